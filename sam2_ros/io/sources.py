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

    Files are decoded whole and checked: a frame that cannot be decoded (a truncated or corrupt
    JPEG/PNG, a video that ends before the frames its container announces, an image of another
    size) raises ``InputError`` naming the file and frame, never yields a half-grey frame or ends
    quietly. With ``skip_bad`` such an image is skipped and a short video is ended early instead,
    and both are recorded in ``skipped`` (one dict per skipped frame) and ``ended_early`` (a
    sentence, or None) for the run's JSON and console.
    """

    kind: str

    def __init__(self, name: str, fps: float | None, frame_count: int | None, skip_bad: bool = False) -> None:
        self.name = name
        self.fps = fps
        self.frame_count = frame_count
        self.skip_bad = skip_bad
        self.skipped: list[dict[str, Any]] = []
        self.ended_early: str | None = None

    def problems(self) -> list[str]:
        """One short line per thing the run should warn about: skipped frames, an early end."""
        lines = []
        if self.skipped:
            shown = ", ".join(str(s["input_index"]) for s in self.skipped[:10])
            more = f" (+{len(self.skipped) - 10} more)" if len(self.skipped) > 10 else ""
            lines.append(f"skipped {len(self.skipped)} bad frame(s) of {self.name}: {shown}{more}")
        if self.ended_early:
            lines.append(self.ended_early)
        return lines

    @abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - a no-op by default: only sources holding a handle override it
        """Release the device or file handle (cameras stay locked until this runs)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A video file or a camera, read with ``cv2.VideoCapture`` (or an object with its API)."""

    def __init__(self, target: str | int, kind: str, capture: Any = None, skip_bad: bool = False) -> None:
        self.kind = kind
        self._cap = capture if capture is not None else cv2.VideoCapture(target)
        name = f"camera {target}" if kind == "camera" else str(target)
        if not self._cap.isOpened():
            self._cap.release()
            hint = "is it connected and free?" if kind == "camera" else "not a video, or a codec OpenCV lacks"
            raise InputError(f"cannot open {name} ({hint})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
        super().__init__(name, fps if fps > 0 else None, count if count > 0 else None, skip_bad)

    def __iter__(self) -> Iterator[np.ndarray]:
        read = 0
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                if read == 0:
                    raise InputError(f"{self.name}: no frame could be read (not a video, or truncated/corrupt)")
                self._check_end(read)
                return
            read += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _check_end(self, read: int) -> None:
        """A video file whose decoder stops before the frames its container announces is damaged."""
        if self.kind != "video" or self.frame_count is None or read >= self.frame_count:
            return
        what = (
            f"{self.name}: frame {read} cannot be decoded: the video ends after {read} of the "
            f"{self.frame_count} frames its container announces (truncated or corrupt file)"
        )
        if not self.skip_bad:
            raise InputError(f"{what}; pass --skip-bad-frames to keep the {read} frames before it")
        self.ended_early = what

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

    def __init__(self, folder: Path, skip_bad: bool = False) -> None:
        self.paths = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=lambda p: natural_key(p.name),
        )
        if not self.paths:
            raise InputError(f"{folder} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
        super().__init__(str(folder), None, len(self.paths), skip_bad)
        #: ``paths`` index of each frame yielded so far (differs from the frame index once one is skipped).
        self.yielded: list[int] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        size = None
        for i, path in enumerate(self.paths):
            try:
                bgr = read_image(path, i)
                # A video needs one frame size; masks and overlays of mixed sizes cannot line up.
                if size is not None and bgr.shape[:2] != size:
                    raise InputError(
                        f"{path} (frame {i}) is {bgr.shape[1]}x{bgr.shape[0]} but earlier images are "
                        f"{size[1]}x{size[0]}; all images must share one size"
                    )
            except InputError as exc:
                if not self.skip_bad:
                    raise InputError(f"{exc}; fix or remove it, or pass --skip-bad-frames to skip it") from None
                self.skipped.append({"input_index": i, "file": str(path), "reason": str(exc)})
                continue
            size = bgr.shape[:2]
            self.yielded.append(i)
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if not self.yielded:
            raise InputError(f"{self.name}: none of its {len(self.paths)} images could be decoded")


def read_image(path: Path, frame: int | None = None) -> np.ndarray:
    """Decode an image file whole, as BGR uint8, or raise ``InputError`` naming it.

    OpenCV (libjpeg) decodes a truncated JPEG with a grey lower part and only a warning on
    stderr, so the file is first decoded by Pillow with truncated images refused: a short or
    corrupt file fails here instead of being segmented as if whole (about 5 ms per 960x540 JPEG).
    """
    # Only decoding image files needs Pillow (install_requires); the CLI's parser and the tests import
    # this module on ROS machines that have only what package.xml lists for the nodes
    # (tests/test_ros_package.py::test_tests_collect_without_pillow).
    from PIL import Image, ImageFile  # noqa: PLC0415 - loaded when an image file is decoded (comment above)

    where = f"{path}" if frame is None else f"{path} (frame {frame})"
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # another library may have switched it on process-wide
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{where} cannot be decoded ({reason}): truncated or corrupt image") from None
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{where} cannot be decoded by OpenCV: corrupt or unsupported image")
    return bgr


def natural_key(name: str) -> list[str | int]:
    """Sort key comparing digit runs as numbers: ``frame2`` < ``frame10``.

    ``re.split`` with a capture group alternates text and digits, so position i holds the
    same type in every key and the lists always compare.
    """
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", name))]


def open_source(spec: str, skip_bad: bool = False) -> FrameSource:
    """Open INPUT: an existing file (video), an existing folder (images) or a camera index.

    Paths win over camera indices, so a folder named ``0`` is still a folder. ``skip_bad``: skip
    undecodable frames (recorded in the source's ``skipped``) instead of failing on them.
    """
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, skip_bad)
    if path.exists():
        return CaptureSource(str(path), "video", skip_bad=skip_bad)
    if spec.isdigit():
        return CameraSource(int(spec))
    raise InputError(
        f"input {spec!r} does not exist (expected a video file, an image folder or a camera index such as 0)"
    )
