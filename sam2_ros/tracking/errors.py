"""Specific errors for bad input. Each leaves the tracker exactly as it was.

Defined in ``sam2_ros.errors`` (user errors, shared with the torch-free ROS message parsing).
"""

from sam2_ros.errors import CapacityError, FrameError, PromptError, TrackerError, UnknownObjectError

__all__ = ["CapacityError", "FrameError", "PromptError", "TrackerError", "UnknownObjectError"]
