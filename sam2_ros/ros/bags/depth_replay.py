"""Depth and camera info for the bag replay: fed to the core in record order, just ahead of each image.

Why: the node pairs a tracked frame with depth that has arrived by then; a bag holds the whole
future, so the replay hands the core every depth and camera-info message recorded up to the
image's record time plus the pairing tolerance before tracking that image. Registered depth is
usually recorded a few milliseconds after its colour image, and this way it is not missed.
"""

from __future__ import annotations

from typing import Any

from sam2_ros.errors import InputError, UsageError
from sam2_ros.ros.interfaces.messages3d import CAMERA_INFO, DEPTH, DEPTH_INPUT_TYPES


def _connection(reader: Any, topic: str, kind: str, flag: str) -> Any:
    msgtype = DEPTH_INPUT_TYPES[kind]
    for connection in reader.connections:
        if connection.topic == topic:
            if connection.msgtype != msgtype:
                raise InputError(f"{reader.path}: {flag} {topic} holds {connection.msgtype}, not {msgtype}")
            return connection
    names = ", ".join(sorted({c.topic for c in reader.connections if c.msgtype == msgtype})) or "none"
    raise InputError(f"{reader.path}: no {msgtype} topic {topic!r} for {flag} ({msgtype} topics: {names})")


class DepthFeed:
    """The depth and camera-info messages of a bag, delivered to a ``TrackerCore`` up to a record time."""

    def __init__(self, reader: Any, depth_topic: str, camera_info_topic: str | None, tolerance_s: float) -> None:
        if camera_info_topic is None:
            raise UsageError("--depth-topic needs --camera-info-topic (the intrinsics of the depth image)")
        self._depth = _connection(reader, depth_topic, DEPTH, "--depth-topic")
        self._info = _connection(reader, camera_info_topic, CAMERA_INFO, "--camera-info-topic")
        self._messages = reader.messages(connections=[self._depth, self._info])
        self._next = next(self._messages, None)
        self._ahead_ns = int(tolerance_s * 1e9)

    def feed(self, core: Any, record_time_ns: int) -> None:
        """Hand ``core`` every message recorded up to ``record_time_ns`` + the tolerance (CDR bytes, as the node)."""
        while self._next is not None and self._next[1] <= record_time_ns + self._ahead_ns:
            connection, _, raw = self._next
            (core.on_depth if connection.id == self._depth.id else core.on_camera_info)(bytes(raw))
            self._next = next(self._messages, None)
