"""TensorRT engine builds shown as progress bars (``IProgressMonitor`` -> tqdm)."""

from __future__ import annotations

import threading
from typing import Any

from tqdm import tqdm


class BuildProgress:
    """TensorRT's nested build phases as tqdm bars; thread-safe; ``cancel()`` stops the build.

    The TensorRT ``IProgressMonitor`` (:func:`progress_monitor`) forwards to this, so the
    display logic runs and is tested without TensorRT.
    """

    def __init__(self, label: str, file=None) -> None:
        self.label, self.file = label, file
        self.cancelled = False
        self._bars: dict[str, Any] = {}
        self._depth: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, phase: str, parent: str | None, steps: int) -> None:

        with self._lock:
            depth = self._depth.get(parent, -1) + 1 if parent else 0
            self._depth[phase] = depth
            desc = f"{self.label}: {phase}" if depth == 0 else f"{'  ' * depth}{phase}"
            self._bars[phase] = tqdm(
                total=steps, desc=desc, position=depth, leave=depth == 0, file=self.file, dynamic_ncols=True
            )

    def step(self, phase: str, step: int) -> bool:
        """Record step ``step`` (0-based) of ``phase`` as done; False asks TensorRT to stop."""
        with self._lock:
            bar = self._bars.get(phase)
            if bar is not None:
                bar.update(step + 1 - bar.n)
        return not self.cancelled

    def finish(self, phase: str) -> None:
        with self._lock:
            bar = self._bars.pop(phase, None)
            self._depth.pop(phase, None)
        if bar is not None:
            bar.close()

    def cancel(self) -> None:
        self.cancelled = True


def progress_monitor(trt, progress: BuildProgress):
    """A ``trt.IProgressMonitor`` driving ``progress``; Ctrl+C inside a callback cancels the build."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                progress.start(phase_name, parent_phase, num_steps)
            except KeyboardInterrupt:
                progress.cancel()

        def step_complete(self, phase_name, step):
            try:
                return progress.step(phase_name, step)
            except KeyboardInterrupt:
                progress.cancel()
                return False

        def phase_finish(self, phase_name):
            try:
                progress.finish(phase_name)
            except KeyboardInterrupt:
                progress.cancel()

    return Monitor()
