"""The project's base for expected failures: things a user can fix, reported without a traceback.

Why a base class: ``sam2-ros`` turns every expected failure of every subcommand into one line
and exit code 2 (``sam2_ros.cli.run_command``). Errors raised with a message written for the
user (a damaged bag, a download that cannot reach its server) derive from ``UserError`` so that
new subcommands inherit that handling without listing their exception types.
"""

from __future__ import annotations


class UserError(Exception):
    """An expected failure whose message says what went wrong and what to do about it."""


class UsageError(UserError, ValueError):
    """A setting or option the user gave that cannot work (a bound, a type, a combination)."""


class InputError(UserError):
    """An input the user named that cannot be read whole: missing, corrupt, truncated, mis-sized."""


class OutputError(UserError):
    """An output that cannot be written or would overwrite something the user did not ask to replace."""


# The tracker's refusals (re-exported by ``sam2_ros.tracking``). Here, not in ``sam2_ros.tracking``, so
# that the ROS message parsing raises the same ``PromptError`` without importing torch.
class TrackerError(UserError):
    """A request the tracker refused without changing its state (a frame, prompt or object id the caller gave)."""


class FrameError(TrackerError, ValueError):
    """A frame that is empty, of the wrong shape or dtype."""


class PromptError(TrackerError, ValueError):
    """A prompt that cannot be used: malformed (a ROS message, a command-line text) or not applicable to the frame.

    The one prompt error of the project: the tracker, the image predictor and the ROS message
    parsing (``sam2_ros.ros.interfaces.messages``) raise it.
    """


class UnknownObjectError(TrackerError, KeyError):
    """An object id the tracker does not track."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CapacityError(TrackerError, RuntimeError):
    """More objects than the preallocated memory bank holds."""
