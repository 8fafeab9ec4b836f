"""Specific errors for bad input. Each leaves the tracker exactly as it was."""


class TrackerError(Exception):
    """Base class: a request the tracker refused without changing its state."""


class FrameError(TrackerError, ValueError):
    """A frame that is empty, of the wrong shape or dtype."""


class PromptError(TrackerError, ValueError):
    """A point, box or mask prompt that cannot apply to the current frame."""


class UnknownObjectError(TrackerError, KeyError):
    """An object id the tracker does not track."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CapacityError(TrackerError, RuntimeError):
    """More objects than the preallocated memory bank holds."""
