"""``sam2-ros download``: checksum and structure checks, exercised on local files.

Meta's server is unreachable here, so the same code path is driven with ``file://`` URLs.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from sam2_ros.cli import main
from sam2_ros.download import KNOWN_SHA256, ChecksumError, checkpoint_url, download, verify_sidecar
from sam2_ros.model import CheckpointError, build_sam2


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A valid SAM 2.1 tiny checkpoint (random weights) and its SHA-256."""
    src = tmp_path_factory.mktemp("server") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": build_sam2("sam2.1_hiera_t", image_size=128).state_dict()}, src)
    return src, hashlib.sha256(src.read_bytes()).hexdigest()


def test_official_urls():
    assert checkpoint_url("sam2.1_hiera_b+").endswith("/092824/sam2.1_hiera_base_plus.pt")
    assert checkpoint_url("sam2_hiera_l").endswith("/072824/sam2_hiera_large.pt")


def test_download_verifies_and_records_the_digest(served, tmp_path):
    src, digest = served
    path = download("sam2.1_hiera_t", tmp_path, sha256=digest, url=src.as_uri(), progress=False)
    assert path.read_bytes() == src.read_bytes()
    assert (tmp_path / "sam2.1_hiera_tiny.pt.sha256").read_text().split()[0] == digest
    assert verify_sidecar(path) == digest
    path.write_bytes(path.read_bytes()[:-1] + b"x")  # corruption after download is caught
    with pytest.raises(ChecksumError, match="does not match"):
        verify_sidecar(path)


def test_wrong_digest_leaves_nothing_behind(served, tmp_path):
    src, _ = served
    with pytest.raises(ChecksumError, match="not the official file"):
        download("sam2.1_hiera_t", tmp_path, sha256="0" * 64, url=src.as_uri(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_another_model_is_refused(served, tmp_path):
    src, _ = served
    with pytest.raises(CheckpointError, match="fits model 'sam2.1_hiera_t'"):
        download("sam2.1_hiera_s", tmp_path, url=src.as_uri(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_download(served, tmp_path, capsys):
    src, digest = served
    assert (
        main(
            [
                "download",
                "sam2.1_hiera_tiny",
                "--out",
                str(tmp_path),
                "--url",
                src.as_uri(),
                "--sha256",
                digest,
                "--quiet",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("sam2.1_hiera_tiny.pt")
    assert main(["download", "sam3", "--out", str(tmp_path), "--quiet"]) == 2
    assert "unknown SAM 2 model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/sam2.1_hiera_tiny.pt",
        "file:///nonexistent/sam2.1_hiera_tiny.pt",
        "/nonexistent/sam2.1_hiera_tiny.pt",
    ],
)
def test_unreachable_url_is_one_line_that_says_what_to_do(url, tmp_path, capsys):
    """Finding 14: no network (refused, missing file) ends in one line naming the URL, --url and --random-weights."""
    assert main(["download", "sam2.1_hiera_t", "--out", str(tmp_path), "--url", url, "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sam2-ros download: error: cannot download {url if '://' in url else 'file://' + url}: ")
    assert "--url" in line and "sam2.1_hiera_tiny.pt" in line and "--random-weights" in line
    assert list(tmp_path.iterdir()) == []


def test_url_may_be_a_local_path(served, tmp_path):
    src, digest = served
    path = download("sam2.1_hiera_t", tmp_path, sha256=digest, url=str(src), progress=False)
    assert path.read_bytes() == src.read_bytes()


@pytest.fixture(scope="module")
def served_edgetam(tmp_path_factory):
    """An EdgeTAM checkpoint in Meta's format with random weights (not Meta's file) and its SHA-256."""
    src = tmp_path_factory.mktemp("server") / "edgetam.pt"
    torch.save({"model": build_sam2("edgetam", image_size=256).state_dict()}, src)
    return src, hashlib.sha256(src.read_bytes()).hexdigest()


def test_edgetam_url_and_pinned_digest():
    assert checkpoint_url("edgetam") == "https://github.com/facebookresearch/EdgeTAM/raw/main/checkpoints/edgetam.pt"
    assert checkpoint_url("EdgeTAM.pt") == checkpoint_url("edgetam")
    assert len(KNOWN_SHA256["edgetam.pt"]) == 64


def test_edgetam_offline_path(served_edgetam, tmp_path, capsys):
    """``--url`` with a local copy; a file that is not Meta's fails the pinned digest unless --sha256 says otherwise."""
    src, digest = served_edgetam
    with pytest.raises(ChecksumError, match="not the official file"):
        download("edgetam", tmp_path, url=src.as_uri(), progress=False)
    assert list(tmp_path.iterdir()) == []
    argv = ["download", "edgetam", "--out", str(tmp_path), "--url", str(src), "--sha256", digest, "--quiet"]
    assert main(argv) == 0
    path = tmp_path / "edgetam.pt"
    assert capsys.readouterr().out.strip() == str(path)
    assert verify_sidecar(path) == digest
    build_sam2("edgetam", checkpoint=path, image_size=256)  # loads strictly


def test_a_sam2_checkpoint_is_not_taken_for_edgetam(served, tmp_path):
    src, digest = served
    with pytest.raises(CheckpointError, match="fits model 'sam2.1_hiera_t'"):
        download("edgetam", tmp_path, sha256=digest, url=src.as_uri(), progress=False)
    assert list(tmp_path.iterdir()) == []
