"""Per-object track state: TRACKING, OCCLUDED (briefly unseen), LOST (unseen for long), re-acquisitions.

Why: SAM 2 always outputs a mask and a presence score, and after an occlusion it sometimes
"finds" the object as a full-frame mask. A robot needs to tell "behind the box for a moment"
from "gone", and must not drive at a full-frame false positive. This module watches the
tracker's outputs (presence and mask area) and keeps a small state machine per object. It is
observation only: it never changes a mask, a score or the memory, so results stay Meta's.

Rules, per object and tracked frame:

* a *sighting* is a visible mask (presence logit > 0, non-empty) that is believable: not
  covering ``full_frame_fraction`` of the image, and not ``area_jump`` times larger than the
  object's last believed area (a small object does not become the whole scene in one frame);
  a prompt on the frame counts as a sighting (the operator says it is there);
* after a sighting the object is TRACKING (a sighting after OCCLUDED or LOST counts as a
  re-acquisition);
* otherwise it is OCCLUDED for up to ``lost_after_frames`` frames (and ``lost_after_s`` seconds
  of the clock, when set), then LOST; with ``remove_lost_after`` set, an object unseen for that
  many frames is removed from the tracker, freeing its slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import IntEnum

import torch
from torch import Tensor


class TrackState(IntEnum):
    """Values equal sam2_ros_interfaces/TrackedObject's ``STATE_*`` constants (0 is left for "unknown")."""

    TRACKING = 1
    OCCLUDED = 2
    LOST = 3


@dataclass(frozen=True)
class ObjectTrackState:
    """One object's state after one frame.

    ``frames_since_seen``: tracked frames since the last sighting (0 on a sighting; counted from
    the object's creation if it was never seen). ``last_seen_frame``/``last_seen_time``: frame
    index and clock time (seconds) of the last sighting, None if never. ``reacquisitions``:
    sightings after OCCLUDED or LOST. ``area``: mask pixels on this frame. ``believed``: this
    frame's mask counted as a sighting (False when invisible, or when visible but refused as
    implausible, see ``refused``). ``refused``: visible but not believed (full-frame or jump).
    """

    state: TrackState
    frames_since_seen: int
    last_seen_frame: int | None
    last_seen_time: float | None
    reacquisitions: int
    area: int
    believed: bool
    refused: bool

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (``summary.json``)."""
        return {
            "state": self.state.name.lower(),
            "frames_since_seen": self.frames_since_seen,
            "last_seen_frame": self.last_seen_frame,
            "reacquisitions": self.reacquisitions,
            "refused": self.refused,
        }


@dataclass
class _Record:
    state: ObjectTrackState
    reference_area: int | None  # area at the last sighting


class TrackStates:
    """The state machine of every object of one tracker (see the module docstring for the rules).

    ``observe`` is called once per result; several results of one frame (a prompt after the
    frame was tracked) replace that frame's update rather than adding another.
    """

    def __init__(
        self,
        lost_after_frames: int = 15,
        lost_after_s: float | None = None,
        remove_lost_after: int | None = None,
        full_frame_fraction: float = 0.9,
        area_jump: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lost_after_frames < 0:
            raise ValueError(f"lost_after_frames must be >= 0, got {lost_after_frames}")
        if lost_after_s is not None and not lost_after_s > 0:
            raise ValueError(f"lost_after_s must be > 0 (or None), got {lost_after_s}")
        if remove_lost_after is not None and remove_lost_after <= lost_after_frames:
            raise ValueError(
                f"remove_lost_after ({remove_lost_after}) must be larger than lost_after_frames "
                f"({lost_after_frames}): an object is removed only once LOST"
            )
        if not 0 < full_frame_fraction <= 1 or not area_jump > 1:
            raise ValueError(
                f"need 0 < full_frame_fraction <= 1 and area_jump > 1, got {full_frame_fraction}, {area_jump}"
            )
        self.lost_after_frames = lost_after_frames
        self.lost_after_s = lost_after_s
        self.remove_lost_after = remove_lost_after
        self.full_frame_fraction = full_frame_fraction
        self.area_jump = area_jump
        self.clock = clock
        self._records: dict[int, _Record] = {}  # after the last observed frame
        self._before: dict[int, _Record] = {}  # before it (to redo that frame's update)
        self._frame: int | None = None

    def clear(self) -> None:
        self._records.clear()
        self._before.clear()
        self._frame = None

    def forget(self, obj_id: int) -> None:
        self._records.pop(obj_id, None)
        self._before.pop(obj_id, None)

    def states(self) -> dict[int, ObjectTrackState]:
        """Every object's state after the last observed frame."""
        return {obj_id: r.state for obj_id, r in self._records.items()}

    def observe(
        self, frame_index: int, object_ids: list[int], masks: Tensor, visible: Tensor, prompted: Iterable[int] = ()
    ) -> tuple[dict[int, ObjectTrackState], list[int]]:
        """Update from one frame's result: (states of ``object_ids``, ids to remove as lost too long).

        ``masks`` B x H x W bool and ``visible`` B bool may stay on the device: the areas and the
        flags come to the host in one transfer. ``prompted``: ids prompted on this frame.
        """
        if frame_index != self._frame:  # a new frame; otherwise redo this frame's update from _before
            self._before = dict(self._records)
            self._frame = frame_index
        if not object_ids:
            return {}, []
        h, w = masks.shape[-2:]
        host = torch.stack([masks.reshape(len(object_ids), -1).sum(1), visible.to(torch.long)]).cpu().tolist()
        now = self.clock()
        prompted = set(prompted)
        out: dict[int, ObjectTrackState] = {}
        remove = []
        for obj_id, area, vis in zip(object_ids, host[0], host[1]):
            new = self._step(
                self._before.get(obj_id), frame_index, int(area), bool(vis), obj_id in prompted, now, h * w
            )
            self._records[obj_id] = new
            out[obj_id] = new.state
            if (
                self.remove_lost_after is not None
                and new.state.state is TrackState.LOST
                and new.state.frames_since_seen >= self.remove_lost_after
            ):
                remove.append(obj_id)
        return out, remove

    def _step(
        self, record: _Record | None, frame: int, area: int, visible: bool, prompted: bool, now: float, frame_area: int
    ) -> _Record:
        reference = record.reference_area if record is not None else None
        implausible = area >= self.full_frame_fraction * frame_area or (
            reference is not None and area > self.area_jump * max(reference, 1)
        )
        believed = prompted or (visible and not implausible)
        refused = visible and not believed
        if believed:
            reacquired = (
                record is not None
                and record.state.state is not TrackState.TRACKING
                and record.state.last_seen_frame is not None
            )
            previous = record.state.reacquisitions if record is not None else 0
            return _Record(
                ObjectTrackState(TrackState.TRACKING, 0, frame, now, previous + int(reacquired), area, True, False),
                area,
            )
        if record is None:
            state = ObjectTrackState(TrackState.OCCLUDED, 1, None, None, 0, area, False, refused)
            return _Record(self._lost_if_due(state, now), None)
        state = replace(
            record.state,
            frames_since_seen=record.state.frames_since_seen + 1,
            area=area,
            believed=False,
            refused=refused,
        )
        return _Record(self._lost_if_due(state, now), reference)

    def _lost_if_due(self, state: ObjectTrackState, now: float) -> ObjectTrackState:
        too_long = state.frames_since_seen > self.lost_after_frames or (
            self.lost_after_s is not None
            and state.last_seen_time is not None
            and now - state.last_seen_time > self.lost_after_s
        )
        return replace(state, state=TrackState.LOST if too_long else TrackState.OCCLUDED)
