"""Frame sources for the ``track`` command: a video file, an image folder or a camera.

Every source yields H x W x 3 uint8 RGB frames, which is what ``Sam2Tracker.track`` takes,
so the command never cares where frames come from. OpenCV decodes to BGR; the swap to
RGB happens here, once, because SAM 2 was trained on RGB and a silent channel swap
degrades masks without any error.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sam2_ros.errors import InputError
from sam2_ros.utils.latest import LatestFrameSlot

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class FrameSource(ABC):
    """Frames from one input, with what is known about it up front.

    ``fps``: the stream's frame rate when the container says (None otherwise);
    ``frame_count``: how many frames to expect when known (None for cameras).
    """

    kind: str

    def __init__(self, name: str, fps: float | None, frame_count: int | None) -> None:
        self.name = name
        self.fps = fps
        self.frame_count = frame_count

    @abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]: ...

    def close(self) -> None:
        """Release the device or file handle (cameras stay locked until this runs)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A video file or a camera, read with ``cv2.VideoCapture`` (or an object with its API)."""

    def __init__(self, target: str | int, kind: str, capture: Any = None) -> None:
        self.kind = kind
        self._cap = capture if capture is not None else cv2.VideoCapture(target)
        name = f"camera {target}" if kind == "camera" else str(target)
        if not self._cap.isOpened():
            self._cap.release()
            hint = "is it connected and free?" if kind == "camera" else "not a video, or a codec OpenCV lacks"
            raise InputError(f"cannot open {name} ({hint})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
        super().__init__(name, fps if fps > 0 else None, count if count > 0 else None)

    def __iter__(self) -> Iterator[np.ndarray]:
        first = True
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                if first:
                    raise InputError(f"{self.name}: no frame could be read")
                return
            first = False
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


class CameraSource(CaptureSource):
    """A live camera: a grabber thread keeps only the newest frame.

    A tracker slower than the camera would otherwise work through OpenCV's buffer of stale
    frames and fall ever further behind; here it always gets the latest frame, and
    ``dropped`` counts the frames it never saw. Memory stays one frame.
    """

    kind = "camera"
    #: Seconds to wait for a frame before deciding the camera stopped.
    READ_TIMEOUT_S = 5.0

    def __init__(self, index: int, capture: Any = None) -> None:
        super().__init__(index, "camera", capture)
        self._slot: LatestFrameSlot[np.ndarray] = LatestFrameSlot()
        self._running = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def _grab(self) -> None:
        while self._running.is_set():
            ok, bgr = self._cap.read()
            if not ok:
                break
            self._slot.put(bgr)
        self._ended.set()
        self._slot.wake()

    def __iter__(self) -> Iterator[np.ndarray]:
        self._running.set()
        self._thread = threading.Thread(target=self._grab, name="camera_grabber", daemon=True)
        self._thread.start()
        first = True
        while True:
            bgr = self._slot.take(timeout=self.READ_TIMEOUT_S)
            if bgr is None:
                if first:
                    raise InputError(f"{self.name}: no frame could be read")
                if self._ended.is_set() or not self._running.is_set():
                    return
                continue
            first = False
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=self.READ_TIMEOUT_S)
        super().close()


class ImageFolderSource(FrameSource):
    """The jpg/jpeg/png files of a folder in natural order (``2.jpg`` before ``10.jpg``)."""

    kind = "images"

    def __init__(self, folder: Path) -> None:
        self.paths = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=lambda p: natural_key(p.name),
        )
        if not self.paths:
            raise InputError(f"{folder} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
        super().__init__(str(folder), None, len(self.paths))

    def __iter__(self) -> Iterator[np.ndarray]:
        size = None
        for path in self.paths:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InputError(f"cannot read image {path}")
            # A video needs one frame size; masks and overlays of mixed sizes cannot line up.
            if size is not None and bgr.shape[:2] != size:
                raise InputError(
                    f"{path} is {bgr.shape[1]}x{bgr.shape[0]} but earlier images are "
                    f"{size[1]}x{size[0]}; all images must share one size"
                )
            size = bgr.shape[:2]
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def natural_key(name: str) -> list[str | int]:
    """Sort key comparing digit runs as numbers: ``frame2`` < ``frame10``.

    ``re.split`` with a capture group alternates text and digits, so position i holds the
    same type in every key and the lists always compare.
    """
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name))]


def open_source(spec: str) -> FrameSource:
    """Open INPUT: an existing file (video), an existing folder (images) or a camera index.

    Paths win over camera indices, so a folder named ``0`` is still a folder.
    """
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.exists():
        return CaptureSource(str(path), "video")
    if spec.isdigit():
        return CameraSource(int(spec))
    raise FileNotFoundError(
        f"input {spec!r} does not exist (expected a video file, an image folder or a camera index such as 0)"
    )
