"""Fetch Meta's official SAM 2 / 2.1 and EdgeTAM checkpoints, with a progress bar and SHA-256 checks.

Integrity is checked in two ways:

* against a known SHA-256 when one is given (``--sha256``) or pinned in ``KNOWN_SHA256``;
* structurally: the file must load with ``weights_only=True`` and fit the named model
  key for key and shape for shape.

``KNOWN_SHA256`` holds no SAM 2 / 2.1 digest: these machines cannot reach Meta's servers, so
none could be measured here, and Meta publishes none. For ``edgetam.pt`` Meta publishes no
digest either, but several independent public projects pin the same one for Meta's file
(SHA-256 ``ed2d4850…80df``, 56,116,523 bytes, EdgeTAM commit 7711e012); it is pinned below
**without having been verified here** (no network). If Meta replaces the file, pass the new
digest with ``--sha256``. After a download the digest is written beside the checkpoint
(``NAME.pt.sha256``) so that later loads (``verify_sidecar``) detect corruption or tampering.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from sam2_ros.errors import InputError, UserError
from sam2_ros.model.config import canonical_name, checkpoint_filename, get_config
from sam2_ros.utils.files import CHUNK, atomic_write, sha256_file

#: Meta's download folders: SAM 2 (July 2024) and SAM 2.1 (September 2024).
BASE_URLS = {
    "2": "https://dl.fbaipublicfiles.com/segment_anything_2/072824/",
    "2.1": "https://dl.fbaipublicfiles.com/segment_anything_2/092824/",
}
#: EdgeTAM (Meta Reality Labs): the checkpoint lives in the code repository, as its README links it.
EDGETAM_URL = "https://github.com/facebookresearch/EdgeTAM/raw/main/checkpoints/edgetam.pt"
#: filename -> SHA-256 hex digest of the official file, measured on real downloads (see the module
#: docstring: the EdgeTAM digest is the one public projects measured; not verified on this machine).
KNOWN_SHA256: dict[str, str] = {
    "edgetam.pt": "ed2d4850b8792c239689b043c47046ec239b6e808a3d9b6ae676c803fd8780df",
}

DEFAULT_DIR = Path(os.environ.get("SAM2_ROS_CHECKPOINTS", Path.home() / ".cache" / "sam2_ros" / "checkpoints"))


#: What a server or a network can do to a download (a full disk or a read-only folder stays an OSError).
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class ChecksumError(InputError, RuntimeError):
    """A downloaded or cached file whose SHA-256 is not the expected one."""


class DownloadError(UserError):
    """``url`` could not be fetched (no network, server error, missing file); nothing was written."""

    def __init__(self, url: str, cause: BaseException) -> None:
        reason = getattr(cause, "reason", None) if isinstance(cause, urllib.error.URLError) else None
        if isinstance(cause, urllib.error.HTTPError):
            reason = f"HTTP {cause.code} {cause.msg}"
        super().__init__(f"cannot download {url}: {reason or cause or type(cause).__name__}")
        self.url = url


def checkpoint_url(name: str) -> str:
    cfg = get_config(name)
    if cfg.is_edgetam:
        return EDGETAM_URL
    return BASE_URLS[cfg.version] + checkpoint_filename(name)


def _fetch(url: str, dest: Path, progress: bool) -> tuple[str, str]:
    """Stream ``url`` to a temp file beside ``dest``; return (temp path, SHA-256); caller renames."""
    digest = hashlib.sha256()
    try:
        resp = urllib.request.urlopen(url, timeout=60)  # noqa: S310 (https, or file for mirrors)
    except (*_NETWORK_ERRORS, ValueError) as exc:  # ValueError: not a URL
        raise DownloadError(url, exc) from exc
    with resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with (
                os.fdopen(fd, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar,
            ):
                for chunk in iter(_reader(resp.read, url), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return tmp, digest.hexdigest()


def _reader(read: Callable[[int], bytes], url: str) -> Callable[[], bytes]:
    """``read(CHUNK)`` with a connection lost halfway reported as a DownloadError."""

    def chunk() -> bytes:
        try:
            return read(CHUNK)
        except _NETWORK_ERRORS as exc:
            raise DownloadError(url, exc) from exc

    return chunk


def source_url(url: str) -> str:
    """``url`` as given, or a local path (``--url ~/sam2.1_hiera_tiny.pt``) as a file:// URL."""
    return url if "://" in url else Path(url).expanduser().resolve().as_uri()


def download(
    name: str,
    out_dir: str | os.PathLike = DEFAULT_DIR,
    sha256: str | None = None,
    url: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download checkpoint ``name`` into ``out_dir`` and verify it; returns its path.

    ``url`` may be a mirror's URL or a local file (path or file:// URL). The file appears under
    its final name only after the checksum (when known) and the structural check pass; a failed
    download leaves nothing behind. Raises ``DownloadError`` when ``url`` cannot be fetched.
    """
    from sam2_ros.model.build import verify_checkpoint  # noqa: PLC0415 - torch import deferred

    name = canonical_name(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / checkpoint_filename(name)
    expected = (sha256 or KNOWN_SHA256.get(dest.name) or "").lower() or None
    if dest.exists() and not force:
        verify_sidecar(dest, expected)
        return dest
    tmp, digest = _fetch(source_url(url) if url else checkpoint_url(name), dest, progress)
    try:
        if expected is not None and digest != expected:
            raise ChecksumError(
                f"{dest}: SHA-256 {digest} does not match expected {expected}; "
                "the download is corrupt or not the official file (nothing was saved)"
            )
        # raises CheckpointError naming what does not fit; it names the download, not the hidden temp file
        verify_checkpoint(tmp, name, source=f"the download of {dest} from {url or checkpoint_url(name)}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    atomic_write(dest.with_name(dest.name + ".sha256"), f"{digest}  {dest.name}\n")
    return dest


def verify_sidecar(path: str | os.PathLike, expected: str | None = None) -> str:
    """Check ``path`` against ``expected`` or its ``.sha256`` sidecar; returns the digest."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if expected is None and sidecar.exists():
        expected = sidecar.read_text().split()[0].lower()
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise ChecksumError(
            f"{path}: SHA-256 {digest} does not match expected {expected}; delete it and run `sam2-ros download` again"
        )
    return digest
