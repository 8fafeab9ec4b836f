"""Track states as the node publishes them: TrackedObject fields, last-sighting stamps, overlay text, diagnostics.

Why: the tracker counts in frames and its own clock; ROS consumers want the stamp of the image
in which an object was last seen. ``LastSeen`` remembers it per object (bounded by the tracked
objects: entries of removed objects are dropped).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_ros.ros.interfaces.messages import stamp_ns
from sam2_ros.tracking.track_state import ObjectTrackState, TrackState
from sam2_ros.utils.draw import draw_states


class LastSeen:
    """Stamp (ns) of the image each object was last seen in, and the reacquisition total."""

    def __init__(self) -> None:
        self.stamps: dict[int, int] = {}

    def update(self, states: dict[int, ObjectTrackState], header: Any) -> None:
        stamp = stamp_ns(header) or 0
        self.stamps = {
            obj_id: stamp if state.frames_since_seen == 0 else self.stamps.get(obj_id, 0)
            for obj_id, state in states.items()
        }

    def diagnostics(self, states: dict[int, ObjectTrackState]) -> dict[str, str]:
        count = {s: sum(1 for v in states.values() if v.state is s) for s in TrackState}
        return {
            "objects_tracking": str(count[TrackState.TRACKING]),
            "objects_occluded": str(count[TrackState.OCCLUDED]),
            "objects_lost": str(count[TrackState.LOST]),
            "reacquisitions": str(sum(v.reacquisitions for v in states.values())),
        }


def track_fields(state: ObjectTrackState | None, last_seen: LastSeen, obj_id: int) -> dict[str, int]:
    """PublishedObject's track fields (state 0 = unknown when the tracker gave none)."""
    if state is None:
        return {}
    return {
        "state": int(state.state),
        "frames_since_seen": state.frames_since_seen,
        "reacquisitions": state.reacquisitions,
        "last_seen_ns": last_seen.stamps.get(obj_id, 0),
    }


def draw_track_states(rgb: np.ndarray, result: Any) -> np.ndarray:
    """The RGB overlay with the objects that are not TRACKING listed in the corner (in place; returned)."""
    draw_states(rgb, sorted(result.states.items()), rgb=True)
    return rgb
