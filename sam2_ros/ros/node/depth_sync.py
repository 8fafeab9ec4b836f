"""Depth images and camera info for the tracker node: decoding and pairing with colour frames by stamp.

Why its own module: depth is optional and must never hold up 2-D tracking. Depth images wait
in a small ring buffer (the oldest falls out: newest wins, no growth); a colour frame takes the
depth image with the nearest stamp within ``tolerance_s``, or none, and the frame is tracked
either way. Every reason a frame got no 3-D (no depth yet, none close enough in time, no
camera info, an unreadable depth image) is counted for diagnostics.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2_ros.errors import InputError
from sam2_ros.geometry import DEFAULT_DEPTH_SCALE, Intrinsics, intrinsics_from_camera_info

#: Depth encodings (sensor_msgs/image_encodings) -> numpy dtype and metres per unit (None: the
#: configured depth_scale, default 0.001 = millimetres as RealSense/ZED/OAK drivers publish).
DEPTH_ENCODINGS: dict[str, tuple[str, float | None]] = {
    "16UC1": ("u2", None),
    "mono16": ("u2", None),
    "32FC1": ("f4", 1.0),
}
#: Depth images kept for pairing; at 30 Hz this spans a quarter of a second.
DEPTH_BUFFER = 8
#: How long a tracked frame may wait for its depth image when none that close has arrived yet
#: but one still may (registered depth is published after the colour image it is aligned to).
DEPTH_WAIT_S = 0.05


class DepthDecodeError(InputError, ValueError):
    """A depth image that cannot be used; the text names the encoding or size problem."""


def depth_from_msg(msg: Any) -> tuple[np.ndarray, float]:
    """(H x W depth array, metres per unit) of a sensor_msgs/Image in 16UC1 / mono16 (mm) or 32FC1 (m)."""
    encoding = msg.encoding
    if encoding not in DEPTH_ENCODINGS:
        raise DepthDecodeError(f"unsupported depth encoding {encoding!r} (supported: {', '.join(DEPTH_ENCODINGS)})")
    kind, scale = DEPTH_ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise DepthDecodeError(f"empty {encoding} depth image ({width}x{height})")
    if step < width * dtype.itemsize or step % dtype.itemsize:
        raise DepthDecodeError(
            f"{encoding} depth image {width}x{height}: step {step} does not hold a row of "
            f"{width} x {dtype.itemsize} bytes"
        )
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise DepthDecodeError(
            f"{encoding} depth image {width}x{height} with step {step} needs {step * height} bytes, got {data.size}"
        )
    rows = data.reshape(height, step)[:, : width * dtype.itemsize]
    depth = np.ascontiguousarray(rows).view(dtype).reshape(height, width).astype(dtype.newbyteorder("="))
    return depth, (scale if scale is not None else DEFAULT_DEPTH_SCALE)


@dataclass
class DepthFrame:
    """A depth image paired with a colour frame, ready for ``locate_objects``."""

    depth: np.ndarray
    depth_scale: float
    intrinsics: Intrinsics
    offset_s: float  # depth stamp minus colour stamp


class DepthSync:
    """Bounded buffers of depth images (by stamp) and the latest camera info; thread-safe.

    ``depth_scale`` replaces the 0.001 m per unit of integer depth (a driver with another unit).
    Counters (``counts``): ``paired``, ``no_depth`` (none received yet), ``stale`` (none within
    the tolerance), ``no_camera_info``, ``bad_depth`` (undecodable), ``unstamped`` (a colour frame without
    stamp cannot be paired).
    """

    def __init__(
        self, tolerance_s: float = 0.02, depth_scale: float | None = None, capacity: int = DEPTH_BUFFER
    ) -> None:
        self.tolerance_ns = int(tolerance_s * 1e9)
        self.depth_scale = depth_scale
        self._lock = threading.Condition()
        self._depth: deque[tuple[int, Any]] = deque(maxlen=capacity)
        self._intrinsics: Intrinsics | None = None
        self.counts: Counter[str] = Counter()

    def put_depth(self, stamp_ns: int, msg: Any) -> None:
        """Keep a depth message (decoded only when a colour frame picks it)."""
        with self._lock:
            self._depth.append((stamp_ns, msg))
            self._lock.notify_all()

    def put_camera_info(self, msg: Any) -> None:
        """Take the intrinsics of a sensor_msgs/CameraInfo; ValueError if unusable."""
        intrinsics = intrinsics_from_camera_info(msg)
        with self._lock:
            self._intrinsics = intrinsics

    @property
    def intrinsics(self) -> Intrinsics | None:
        return self._intrinsics

    def match(self, stamp_ns: int | None, wait_s: float = 0.0) -> DepthFrame | None:
        """The depth frame for a colour frame stamped ``stamp_ns``, or None (the reason is counted).

        When no depth image is stamped at or after ``stamp_ns - tolerance`` yet, waits up to
        ``wait_s`` for one. Raises ``DepthDecodeError`` (counted as ``bad_depth``) when the
        nearest depth image cannot be read, so the caller can log why.
        """
        if stamp_ns is None:
            self.counts["unstamped"] += 1
            return None
        with self._lock:
            self._lock.wait_for(lambda: any(s >= stamp_ns - self.tolerance_ns for s, _ in self._depth), timeout=wait_s)
            candidates = list(self._depth)
            intrinsics = self._intrinsics
        if not candidates:
            self.counts["no_depth"] += 1
            return None
        depth_stamp, msg = min(candidates, key=lambda c: abs(c[0] - stamp_ns))
        if abs(depth_stamp - stamp_ns) > self.tolerance_ns:
            self.counts["stale"] += 1
            return None
        if intrinsics is None:
            self.counts["no_camera_info"] += 1
            return None
        try:
            depth, scale = depth_from_msg(msg)
        except DepthDecodeError:
            self.counts["bad_depth"] += 1
            raise
        if self.depth_scale is not None and depth.dtype.kind in "ui":
            scale = self.depth_scale
        self.counts["paired"] += 1
        return DepthFrame(depth, scale, intrinsics, (depth_stamp - stamp_ns) / 1e9)
