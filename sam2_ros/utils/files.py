"""Atomic file writes and SHA-256 digests.

Checkpoints, ONNX graphs, engines and manifests are read by long-running processes (a
robot's tracker) and written by downloads and exports that can be interrupted. Every file
is therefore written under a temporary name in the same folder and moved into place with
``os.replace``: a reader sees the old file or the complete new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from sam2_ros.errors import OutputError

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest``, on error it is removed.

    The file gets the permissions a plain ``open`` would give it (``mkstemp`` makes it 0600).
    """
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(dest: str | os.PathLike, data: bytes | str, fsync: bool = True) -> None:
    """Write ``data`` to ``dest`` atomically.

    ``fsync`` flushes to disk before the rename (manifests, engines); per-frame outputs
    skip it, since a crash there loses at most frames that are re-computable.
    """
    if isinstance(data, str):
        data = data.encode()
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def sha256_file(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB chunks (optionally with a progress bar)."""
    digest = hashlib.sha256()
    size = Path(path).stat().st_size
    with (
        open(path, "rb") as fh,
        tqdm(total=size, unit="B", unit_scale=True, desc="sha256", disable=not progress, leave=False) as bar,
    ):
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


STAGING_PREFIX = ".staging-"
REPLACED_PREFIX = ".replaced-"


class StagedDir:
    """An output folder written whole or not at all: files go to a hidden sibling, published by rename.

    ``path`` is where the command writes while it runs (``.staging-<name>-<token>`` beside ``dest``).
    ``publish()`` moves it to ``dest`` (with ``overwrite``, an existing ``dest`` is replaced whole:
    renamed aside, then deleted, so no old file ever mixes with new ones); ``discard()`` deletes it.
    Used as a context manager, the folder is discarded unless it was published, so an error or
    Ctrl+C leaves ``dest`` exactly as it was. An existing ``dest`` is refused up front unless
    ``overwrite`` (``OutputError``), before anything heavy runs.
    """

    def __init__(self, dest: str | os.PathLike, overwrite: bool = False, flag: str = "--out") -> None:

        self.dest = Path(dest)
        self.overwrite = overwrite
        if self.dest.exists() and not self.dest.is_dir():
            raise OutputError(f"{flag} {self.dest} exists and is not a folder; choose another {flag}")
        if self.dest.is_dir() and any(self.dest.iterdir()) and not overwrite:
            raise OutputError(
                f"{flag} {self.dest} already holds files (an earlier run?); pass --overwrite to replace it "
                f"whole, or choose another {flag}"
            )
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.dest.parent.glob(f"{STAGING_PREFIX}{self.dest.name}-*"):  # left by a killed run
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{self.dest.name}-", dir=self.dest.parent))
        self.published = False

    def publish(self) -> Path:
        """Move the staged folder to ``dest`` (replacing an existing one when allowed); returns ``dest``."""
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o777 & ~umask)  # mkdtemp makes it 0700
        publish_dir(self.path, self.dest)
        self.published = True
        return self.dest

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published:
            self.discard()


def publish_dir(src: Path, dest: Path) -> None:
    """Rename folder ``src`` to ``dest``; an existing ``dest`` is moved aside first and then deleted."""
    if dest.exists():
        old = dest.with_name(f"{REPLACED_PREFIX}{dest.name}-{os.getpid()}-{os.urandom(4).hex()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)
