"""Streaming tracker, memory bank and inference backends."""

from sam2_ros.tracking.backend import Backend, TorchBackend
from sam2_ros.tracking.bank import MemoryBank, MemoryBatch
from sam2_ros.tracking.errors import CapacityError, FrameError, PromptError, TrackerError, UnknownObjectError
from sam2_ros.tracking.results import ObjectResult, TrackResult
from sam2_ros.tracking.track_state import ObjectTrackState, TrackState, TrackStates
from sam2_ros.tracking.tracker import Sam2Tracker

__all__ = [
    "Backend",
    "CapacityError",
    "FrameError",
    "MemoryBank",
    "MemoryBatch",
    "ObjectResult",
    "PromptError",
    "ObjectTrackState",
    "Sam2Tracker",
    "TorchBackend",
    "TrackResult",
    "TrackState",
    "TrackStates",
    "TrackerError",
    "UnknownObjectError",
]
