"""What to annotate: INPUTS (paths, globs, ``@list.txt``) -> inputs with a kind, a stable name and hashes.

An input is a video file, a folder of images, or a ROS 2 bag (a rosbag2 folder with
``metadata.yaml`` or a single ``.mcap`` file). Its output folder name is its stem plus a short
hash of its absolute path: stable from run to run (resuming needs that) and unique even when
two cameras both recorded ``front.mp4``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam2_ros.errors import InputError, UsageError
from sam2_ros.io.sources import IMAGE_SUFFIXES, FrameSource, natural_key, open_source
from sam2_ros.utils.files import sha256_file

KINDS = ("video", "images", "bag")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InputSpec:
    """One input: ``spec`` as the user wrote it, its resolved ``path``, ``kind`` and output folder ``name``."""

    spec: str
    path: Path
    kind: str
    name: str


def expand_inputs(specs: list[str]) -> list[InputSpec]:
    """Paths, globs (``**`` allowed) and ``@FILE`` lists (one path or glob a line, ``#`` comments) -> inputs.

    Each input appears once (first mention wins); a path that does not exist or a glob that
    matches nothing is an error, so a typo never silently shrinks a dataset.
    """
    found: dict[Path, InputSpec] = {}
    for spec in specs:
        for text in _list_file(spec[1:]) if spec.startswith("@") else [spec]:
            for path in _matches(text):
                resolved = path.resolve()
                if resolved not in found:
                    found[resolved] = InputSpec(
                        text if path == Path(text) else str(path), resolved, input_kind(resolved), output_name(resolved)
                    )
    if not found:
        raise UsageError("no inputs given")
    return list(found.values())


def _list_file(name: str) -> list[str]:
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"input list @{name}: {path} does not exist")
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    # Relative entries are relative to the list file, so a list travels with its recordings.
    return [entry if Path(entry).is_absolute() else str(path.parent / entry) for entry in lines if entry]


def _matches(text: str) -> list[Path]:
    if glob.has_magic(text):
        matches = sorted(glob.glob(text, recursive=True), key=natural_key)
        if not matches:
            raise FileNotFoundError(f"input pattern {text!r} matches nothing")
        return [Path(m) for m in matches]
    if not Path(text).exists():
        raise FileNotFoundError(
            f"input {text!r} does not exist (expected a video file, an image folder or a ROS 2 bag)"
        )
    return [Path(text)]


def input_kind(path: Path) -> str:
    """``bag`` (rosbag2 folder or .mcap file), ``images`` (other folder) or ``video`` (other file)."""
    if path.is_dir():
        return "bag" if (path / "metadata.yaml").is_file() else "images"
    return "bag" if path.suffix.lower() in (".mcap", ".db3") else "video"


def output_name(path: Path) -> str:
    """``<stem>-<8 hex of the absolute path>``: the input's folder in the dataset."""
    stem = _UNSAFE.sub("_", path.stem if path.is_file() else path.name).strip("._") or "input"
    return f"{stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def input_files(path: Path, kind: str) -> list[Path]:
    """The files whose content is the input: the file itself, a folder's images, or all of a bag's files."""
    if not path.is_dir():
        return [path]
    files = [p for p in path.rglob("*") if p.is_file()]
    if kind == "images":
        files = [p for p in files if p.parent == path and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(str(p.relative_to(path))))


def fingerprint(path: Path, kind: str) -> str:
    """Cheap identity (names, sizes, modification times): unchanged means no need to hash the content again."""
    stats = [
        (str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in input_files(path, kind)
    ]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()


def content_sha256(path: Path, kind: str) -> str:
    """SHA-256 of the input's content: the file's digest, or a digest over a folder's (name, digest) pairs."""
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for p in input_files(path, kind):
        digest.update(f"{p.relative_to(path)}\0{sha256_file(p)}\n".encode())
    return digest.hexdigest()


class BagSource(FrameSource):
    """The images of one topic of a ROS 2 bag, read and decoded as the replay and the node do.

    The bag is opened, its topic chosen and its messages read by ``sam2_ros.ros.bags.bag_io`` (the
    replay's reader: a damaged bag is a one-line ``BagError``), and each image is decoded by the
    node's codec, so a bag annotated here gives the frames the replay and the node see.
    ``stamp_ns`` holds the header stamp of the frame last yielded (to match detections to it).
    """

    kind = "bag"

    def __init__(self, path: Path, image_topic: str | None) -> None:
        from sam2_ros.ros.bags.bag_io import image_connections, open_bag  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code
        from sam2_ros.ros.node.core import IMAGE_TYPES  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code

        self._stack = contextlib.ExitStack()
        self._reader = self._stack.enter_context(open_bag(path))
        try:
            self.connections = image_connections(self._reader, image_topic, list(IMAGE_TYPES.values()))
        except Exception:
            self._stack.close()
            raise
        self.stamp_ns: int | None = None
        super().__init__(str(path), None, sum(c.msgcount for c in self.connections) or None)

    def __iter__(self) -> Iterator[np.ndarray]:
        from sam2_ros.ros.bags.bag_io import read_messages  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code
        from sam2_ros.ros.interfaces.image_codec import image_to_rgb  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code
        from sam2_ros.ros.interfaces.messages import stamp_ns  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code
        from sam2_ros.ros.interfaces.typesys import typestore  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code

        for index, (_, msg) in enumerate(read_messages(self._reader, self.connections, typestore())):
            self.stamp_ns = stamp_ns(msg.header)
            try:
                yield image_to_rgb(msg)
            except ValueError as exc:  # an undecodable image would shift every later frame's index
                raise InputError(f"image {index} on {self.connections[0].topic}: {exc}") from exc

    def close(self) -> None:
        self._stack.close()


def open_input(spec: InputSpec, image_topic: str | None, skip_bad: bool = False) -> FrameSource:
    """The frames of an input: the CLI's video/folder sources (decode-checked), or :class:`BagSource`."""
    if spec.kind == "bag":
        return BagSource(spec.path, image_topic)
    return open_source(str(spec.path), skip_bad)
