"""Rate-limited error logs, one budget per kind of fault.

Why: a camera that sends a bad encoding sends it thirty times a second, and one log line per
frame would bury everything else; but one silent slot for all faults hides a second, different
fault behind the first. So each kind of fault (an encoding, an exception type on a topic) gets
its own budget: its first occurrence is logged at once, later ones at most once per period,
with the count of those held back in between.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Kinds remembered at once; the least recently logged one is forgotten beyond this (kinds come
#: partly from message contents, e.g. encoding names, so their number must not grow without bound).
MAX_KINDS = 256
#: Longest message text logged; longer ones are cut (exception texts can be whole dumps).
MAX_MESSAGE_CHARS = 400


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space), cut to ``limit`` chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class KindRateLimiter:
    """Logs through ``logger`` at most once per ``period_s`` seconds per kind of message.

    ``logger``: anything with ``error``/``warning``/``info`` methods (Python's ``logging.Logger``,
    rclpy's node logger); ``clock``: seconds, monotonic. Thread-safe: callbacks on several
    executor threads may log at once.
    """

    def __init__(self, logger: Any, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if period_s < 0:
            raise ValueError(f"period_s must be >= 0, got {period_s}")
        self.logger = logger
        self.period_s = period_s
        self.clock = clock
        self._lock = threading.Lock()
        self._kinds: OrderedDict[str, list[float | int]] = OrderedDict()  # kind -> [last logged, suppressed]

    def log(self, level: str, kind: str, message: str) -> bool:
        """Log ``message`` at ``level`` ("error", "warning" or "info") unless ``kind`` was logged within the period.

        Returns whether it was logged. A logged message says how many of its kind were held back
        since the previous one.
        """
        write = getattr(self.logger, level, None)
        if level not in ("error", "warning", "info") or write is None:
            raise ValueError(f"level must be error, warning or info, got {level!r}")
        now = self.clock()
        with self._lock:
            entry = self._kinds.get(kind)
            if entry is not None and now - entry[0] < self.period_s:
                entry[1] += 1
                return False
            suppressed = int(entry[1]) if entry is not None else 0
            self._kinds[kind] = [now, 0]
            self._kinds.move_to_end(kind)
            while len(self._kinds) > MAX_KINDS:
                self._kinds.popitem(last=False)
        text = one_line(message)
        if suppressed:
            text += f" ({suppressed} more like this in the last {now - float(entry[0]):.0f} s not logged)"
        write(text)
        return True

    def suppressed(self, kind: str) -> int:
        """How many messages of ``kind`` were held back since it was last logged."""
        with self._lock:
            entry = self._kinds.get(kind)
            return int(entry[1]) if entry is not None else 0
