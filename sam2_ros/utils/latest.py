"""A size-1 hand-over between a producer (camera, ROS callback) and the tracker: newest wins."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    """A size-1, thread-safe hand-over where the newest item wins.

    Why: a tracker slower than the camera must always work on the latest frame; a queue would
    make the delay grow without bound. ``dropped`` counts items replaced before anyone took them.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._woken = False
        self.received = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify_all()

    def take(self, timeout: float = 0.0) -> T | None:
        """The newest item, waiting up to ``timeout`` s for one; None on timeout or after ``wake()``."""
        with self._cond:
            if self._item is None and timeout > 0:
                self._cond.wait_for(lambda: self._item is not None or self._woken, timeout)
            item, self._item, self._woken = self._item, None, False
            return item

    def wake(self) -> None:
        """End a waiting ``take`` early (a command was queued and should not wait for a frame)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()
