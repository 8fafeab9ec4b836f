"""``sam2-ros track`` end to end on real frames, in-process, with random weights.

Random weights make the masks meaningless, so these tests check plumbing: which files
appear, their sizes, types and values, that the label PNGs, logits and summary agree, and
that a prompt @N acts on frame N. Runs use a 128-pixel model input to stay fast on CPU.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sam2_ros.cli import main
from sam2_ros.errors import InputError
from sam2_ros.factory import make_backend, resolve_device
from sam2_ros.io.prompts import BoxPrompt, PointPrompt, build_schedule, parse_box, parse_point
from sam2_ros.io.sources import ImageFolderSource, natural_key, open_source

RANDOM_TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "128"]
BEDROOM_HW = (540, 960)
ARM_HW = (720, 1280)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` with stderr captured (module-scoped fixtures cannot use capsys)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def bedroom(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six bedroom frames as an image folder."""
    folder = tmp_path_factory.mktemp("bedroom")
    for i in range(6):
        (folder / f"{i:05d}.jpg").symlink_to(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")
    return folder


@pytest.fixture(scope="module")
def folder_run(bedroom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Objects 1 (two clicks) and 2 (box + negative click) on frame 0, object 3 added on frame 3."""
    out = tmp_path_factory.mktemp("folder_out")
    rc, err = run_cli(
        [
            "track",
            bedroom,
            "--out",
            out,
            *RANDOM_TINY,
            "--save-logits",
            "--point",
            "1:400,200",
            "--point",
            "1:450,250:0",
            "--box",
            "2:100,100,500,400",
            "--point",
            "2:300,300:0",
            "--point",
            "3:600,300@3",
        ]
    )
    assert rc == 0, err
    assert "RANDOM" in err or "UNTRAINED" in err
    return out


@pytest.fixture(scope="module")
def video_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("video_out")
    rc, err = run_cli(
        [
            "track",
            data_dir / "videos" / "16_robotarm.mp4",
            "--out",
            out,
            *RANDOM_TINY,
            "--max-frames",
            "4",
            "--box",
            "1:500,200,800,500",
            "--point",
            "2:100,100@2",
            "--point",
            "3:100,100@10",
        ]
    )
    assert rc == 0, err
    return out, err


def frame_ids(summary: dict) -> list[list[int]]:
    return [[o["id"] for o in f["objects"]] for f in summary["frames"]]


def count_frames(video: Path) -> tuple[int, float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    n, hw = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, hw = n + 1, frame.shape[:2]
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps, hw


# --------------------------------------------------------------- image folder
def test_folder_masks_are_label_images(folder_run: Path) -> None:
    ids = frame_ids(json.loads((folder_run / "summary.json").read_text()))
    pngs = sorted((folder_run / "masks").iterdir())
    assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(6)]
    for png, frame_objects in zip(pngs, ids, strict=True):
        labels = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint8 and labels.shape == BEDROOM_HW
        assert set(np.unique(labels).tolist()) <= {0, *frame_objects}


def test_folder_summary(folder_run: Path) -> None:
    s = json.loads((folder_run / "summary.json").read_text())
    assert s["model"] == "sam2.1_hiera_t" and s["weights"] == "random"
    assert (s["backend"], s["device"], s["dtype"], s["image_size"]) == ("torch", "cpu", "float32", 128)
    assert s["input"]["kind"] == "images" and s["input"]["frame_count"] == 6
    assert s["frame_hw"] == list(BEDROOM_HW) and s["stopped_by"] == "end of input"
    assert s["totals"]["frames"] == len(s["frames"]) == 6
    assert set(s["totals"]["latency_ms"]) == {"mean", "p50", "p99"} and s["totals"]["fps"] > 0
    # Object 3 is prompted @3: absent before frame 3, tracked from then on.
    assert frame_ids(s) == [[1, 2]] * 3 + [[1, 2, 3]] * 3
    assert [f["prompted"] for f in s["frames"]] == [[1, 2], [], [], [3], [], []]
    assert [f["index"] for f in s["frames"]] == list(range(6))
    for f in s["frames"]:
        assert f["latency_ms"] > 0 and {"image_encoder", "memory_encoder", "track"} <= set(f["tracker_ms"])
        for o in f["objects"]:
            assert isinstance(o["score"], float) and isinstance(o["visible"], bool)
            assert o["box"] is None or len(o["box"]) == 4


def test_folder_logits_agree_with_labels(folder_run: Path) -> None:
    summary = json.loads((folder_run / "summary.json").read_text())
    checked = 0
    for index, ids in enumerate(frame_ids(summary)):
        with np.load(folder_run / "logits" / f"{index:05d}.npz") as npz:
            assert sorted(npz.files, key=int) == [str(i) for i in ids]
            logits = np.stack([npz[str(i)] for i in ids])
        assert logits.dtype == np.float32 and logits.shape == (len(ids), *BEDROOM_HW)
        labels = cv2.imread(str(folder_run / "masks" / f"{index:05d}.png"), cv2.IMREAD_UNCHANGED)
        positive = logits > 0
        alone = positive.sum(axis=0) == 1
        expected = np.asarray(ids, dtype=np.uint8)[positive.argmax(axis=0)]
        np.testing.assert_array_equal(labels[alone], expected[alone])
        assert (labels[~positive.any(axis=0)] == 0).all()
        checked += int(alone.sum())
    assert checked > 0  # the comparison above was not vacuous


def test_folder_overlay_video(folder_run: Path) -> None:
    n, fps, hw = count_frames(folder_run / "overlay.mp4")
    assert (n, hw) == (6, BEDROOM_HW)
    assert fps == pytest.approx(30.0)  # folders have no frame rate: 30 by default


# ------------------------------------------------------------------ video file
def test_video_file_run(video_run: tuple[Path, str]) -> None:
    out, err = video_run
    s = json.loads((out / "summary.json").read_text())
    assert s["input"]["kind"] == "video" and s["input"]["fps"] == pytest.approx(25.0)
    assert s["input"]["frame_count"] == 250
    assert s["stopped_by"] == "max frames" and s["totals"]["frames"] == 4
    assert frame_ids(s) == [[1], [1], [1, 2], [1, 2]]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    assert cv2.imread(str(out / "masks" / "00003.png"), cv2.IMREAD_UNCHANGED).shape == ARM_HW
    assert not (out / "logits").exists()
    n, fps, hw = count_frames(out / "overlay.mp4")
    assert (n, hw) == (4, ARM_HW) and fps == pytest.approx(25.0)
    assert "prompts for frames [10] were never applied" in err


# ----------------------------------------------------------------------- errors
def test_point_outside_image_exits_2(bedroom: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(
        ["track", str(bedroom), "--out", str(tmp_path), *RANDOM_TINY, "--max-frames", "1", "--point", "1:5000,10"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "--point 1:5000,10" in err and "outside the 960x540 frame" in err
    assert list(tmp_path.iterdir()) == []  # a failed run leaves --out as it was: no masks, no summary


def test_missing_checkpoint_says_how_to_get_it(
    bedroom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("sam2_ros.download.DEFAULT_DIR", tmp_path / "empty")
    assert main(["track", str(bedroom), "--out", str(tmp_path / "out"), "--point", "1:10,10"]) == 2
    err = capsys.readouterr().err
    assert "sam2-ros download sam2.1_hiera_t" in err and "sam2.1_hiera_tiny.pt" in err
    assert main(["track", str(bedroom), "--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "sam2-ros download" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing is written before the model loads


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["track", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o"), *RANDOM_TINY]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["track", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), *RANDOM_TINY]) == 2
    assert "holds no" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    assert main(["track", str(tmp_path / "junk.mp4"), "--out", str(tmp_path / "o"), *RANDOM_TINY]) == 2
    assert "junk.mp4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--point", "1:10", "X,Y must be 2 finite numbers"),
        ("--point", "1:a,5", "X,Y must be 2 finite numbers"),
        ("--point", "1:1,2,3", "X,Y must be 2 finite numbers"),
        ("--point", "1:5,5:2", "LABEL must be 1 (object) or 0"),
        ("--point", "0:5,5", "OBJ must be in 1..255"),
        ("--point", "256:5,5", "OBJ must be in 1..255"),
        ("--point", "x:5,5", "OBJ 'x' is not an integer"),
        ("--point", "1:5,5@-1", "FRAME must be >= 0"),
        ("--point", "1:5,5@two", "FRAME 'two' is not an integer"),
        ("--point", "1:nan,5", "finite"),
        ("--box", "1:1,2,3", "X1,Y1,X2,Y2 must be 4 finite numbers"),
        ("--box", "1:10,10,5,20", "need X1 < X2 and Y1 < Y2"),
        ("--box", "1:1,2,3,4:1", "expected OBJ:X1,Y1,X2,Y2[@FRAME]"),
    ],
)
def test_prompt_parse_errors(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["track", "0", "--out", str(tmp_path), *RANDOM_TINY, f"{flag}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and message in err and repr(value) in err


def test_prompt_parsing_and_schedule() -> None:
    assert parse_point("3:10.5,20:0@7") == PointPrompt(3, 10.5, 20.0, 0, 7, "3:10.5,20:0@7")
    assert parse_point("255:1,2") == PointPrompt(255, 1.0, 2.0, 1, 0, "255:1,2")
    assert parse_box("2:1,2,30,40@4") == BoxPrompt(2, (1.0, 2.0, 30.0, 40.0), 4, "2:1,2,30,40@4")
    schedule = build_schedule(
        [parse_point("2:5,5"), parse_point("1:6,6@3"), parse_point("2:7,7:0")], [parse_box("2:1,1,9,9")]
    )
    assert sorted(schedule) == [0, 3]
    (p2,) = schedule[0]
    assert (p2.obj_id, p2.box, p2.points, p2.labels) == (2, (1.0, 1.0, 9.0, 9.0), [(5.0, 5.0), (7.0, 7.0)], [1, 0])
    assert [p.obj_id for p in schedule[3]] == [1]
    with pytest.raises(ValueError, match="two boxes for object 2 on frame 0"):
        build_schedule([], [parse_box("2:1,1,9,9"), parse_box("2:0,0,5,5")])


def test_backend_factory_rejects_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="unknown backend 'nope'; available: torch, onnxruntime, tensorrt"):
        make_backend("nope", None, "cpu", torch.float32)
    with pytest.raises(ValueError, match="pass --engine-dir DIR"):
        make_backend("tensorrt", None, "cpu", torch.float32)
    with pytest.raises(SystemExit):
        main(["track", "0", "--out", str(tmp_path), "--backend", "openvino"])
    assert "invalid choice: 'openvino'" in capsys.readouterr().err


def test_device_names_are_checked() -> None:
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


# ---------------------------------------------------------------------- sources
def test_image_folder_natural_order(tmp_path: Path) -> None:
    for i, name in enumerate(["f10.png", "f2.jpg", "f1.JPEG", "notes.txt"]):
        if name.endswith(".txt"):
            (tmp_path / name).write_text("not an image")
            continue
        cv2.imwrite(str(tmp_path / name), np.full((4, 6, 3), (10 * i, 0, 255), dtype=np.uint8))
    assert natural_key("f2.jpg") < natural_key("f10.png")
    with open_source(str(tmp_path)) as source:
        assert isinstance(source, ImageFolderSource) and source.frame_count == 3
        assert [p.name for p in source.paths] == ["f1.JPEG", "f2.jpg", "f10.png"]
        frames = list(source)
    assert all(f.shape == (4, 6, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[2][0, 0, 0] == 255  # BGR (x, 0, 255) written -> RGB red first


def test_image_folder_rejects_mixed_sizes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((4, 6, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(InputError, match="all images must share one size"):
        list(open_source(str(tmp_path)))


def test_argparse_rejects_checkpoint_with_random_weights(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["track", "0", "--out", str(tmp_path), "--random-weights", "--checkpoint", "x.pt"])


class _FastCamera:
    """A stand-in for cv2.VideoCapture on a camera: frame i has every pixel = i, 1 ms apart."""

    def __init__(self, frames: int) -> None:
        self.i, self.frames = 0, frames

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's API)
        return True

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        time.sleep(0.001)
        if self.i >= self.frames:
            return False, None
        self.i += 1
        return True, np.full((4, 4, 3), self.i % 256, np.uint8)

    def release(self) -> None:
        pass


def test_camera_source_hands_over_the_newest_frame() -> None:
    """A consumer slower than the camera sees fresh frames, not a growing backlog."""
    from sam2_ros.io.sources import CameraSource

    with CameraSource(0, capture=_FastCamera(200)) as cam:
        seen = []
        for frame in cam:
            seen.append(int(frame[0, 0, 0]))
            time.sleep(0.02)  # a slow tracker
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # in order, never repeated
    assert len(seen) < 100 and cam.dropped > 100  # most frames were skipped, not queued
    assert seen[-1] >= 190  # and the last one handed over is (nearly) the newest


def test_missing_tensorrt_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--backend tensorrt` without TensorRT names the install step in one line, not an ImportError traceback.

    The engines folder is checked before TensorRT is imported, so the backend's loader is replaced
    by the real import step alone (also on a machine that has TensorRT: `tensorrt` is hidden).
    """
    from sam2_ros.backends import tensorrt as trt_backend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    monkeypatch.setattr(
        trt_backend.TensorRTBackend, "from_dir", classmethod(lambda cls, *a, **k: trt_backend.import_tensorrt())
    )
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "00000.png"), np.zeros((32, 48, 3), dtype=np.uint8))
    (tmp_path / "engines.json").write_text(  # what start-up reads before the backend: the build's limits
        json.dumps(
            {
                "format": 1,
                "tensorrt": "10.3.0",
                "gpu": {},
                "model": {"image_size": 1024},
                "checkpoint_sha256": "random",
                "build": {"max_objects": 16, "precision": "fp16"},
                "constants": {},
                "engines": {g: {} for g in trt_backend.GRAPHS},
            }
        )
    )
    code = main(
        [
            "track",
            str(frames),
            "--out",
            str(tmp_path / "out"),
            "--backend",
            "tensorrt",
            "--engines",
            str(tmp_path),
            "--point",
            "1:10,10",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "backend tensorrt is not available" in err[0] and "pip install" in err[0], err
