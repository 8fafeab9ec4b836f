"""The flag that SIGINT and SIGTERM set to stop the node, safe however often and whenever they arrive.

Why not ``threading.Event``: a Python signal handler runs in the main thread between two of its
bytecodes. ``Event.set`` takes a lock; when the next signal lands while a handler holds it, the
nested handler waits on the lock its own thread holds, each further signal interrupts that wait
with one more nested handler, and the process dies of RecursionError (seen in CI with SIGINT every
20 ms: launch and a terminal both forward Ctrl+C). A plain attribute needs no lock; the main
thread polls it between spins. tests/test_stop_request.py storms both with signals.
"""

from __future__ import annotations

import signal
from types import FrameType


class StopRequest:
    """Set by ``handler`` (install it with ``install``); read as ``requested`` by the main thread."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: FrameType | None) -> None:
        """Takes no lock and calls nothing that could: it may run inside any line of the main thread."""
        self.requested = True

    def install(self, signals: tuple[signal.Signals, ...]) -> dict[int, object]:
        """Make ``signals`` set this request; returns the handlers they had, to put back."""
        return {sig: signal.signal(sig, self.handler) for sig in signals}
