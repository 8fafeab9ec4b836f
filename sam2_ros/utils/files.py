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
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

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
