"""What ``Sam2Tracker`` returns for a frame: device tensors plus cheap host views.

The tracker hands over each object's low-resolution logits; the full-resolution logits,
boxes and visibility are computed on first read and kept, so they are made at most once per
frame however many consumers read them (the tracker's track state reads the masks itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sam2_ros.tracking.imageops import boxes_from_logits, upsample_logits

if TYPE_CHECKING:
    from sam2_ros.tracking.track_state import ObjectTrackState


@dataclass
class ObjectResult:
    """One object on one frame, on the host."""

    obj_id: int
    mask: np.ndarray  # H x W bool at the input resolution
    score: float  # object-presence logit (> 0: present; low under occlusion)
    visible: bool  # present and with a non-empty mask
    box: tuple[float, float, float, float] | None  # x1, y1, x2, y2 (inclusive pixels), None if empty
    track: ObjectTrackState | None = None  # TRACKING / OCCLUDED / LOST and when last seen (see track_state)

    @property
    def probability(self) -> float:
        """Object-presence probability, sigmoid of ``score``."""
        return float(1.0 / (1.0 + np.exp(-self.score)))


class _Lazy:
    """A required ``TrackResult`` field that may be passed as None and is then computed on first read.

    A descriptor-typed dataclass field: the generated ``__init__`` stores through ``__set__``;
    raising AttributeError on class access keeps the field without a default.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, "_" + name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            raise AttributeError(self.name)
        value = obj.__dict__.get(self.slot)
        if value is None:
            value = obj.__dict__[self.slot] = obj._derive(self.name)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class TrackResult:
    """All tracked objects on frame ``frame_index``; tensors stay on the device.

    ``logits``: B x H x W mask logits at the input resolution; ``scores``: B presence
    logits; ``boxes``: B x 4; ``visible``: B bools. Row i belongs to ``object_ids[i]``.
    Built by :meth:`from_low_res`, ``logits``/``boxes``/``visible`` are computed when first read.
    """

    frame_index: int
    frame_hw: tuple[int, int]
    object_ids: list[int]
    logits: Tensor = _Lazy()
    scores: Tensor
    boxes: Tensor = _Lazy()
    visible: Tensor = _Lazy()
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Track state per object id (``Sam2Tracker.states``; observation only, see ``track_state``).
    states: dict[int, ObjectTrackState] = field(default_factory=dict)

    @classmethod
    def from_low_res(
        cls,
        frame_index: int,
        frame_hw: tuple[int, int],
        object_ids: list[int],
        low_res: Tensor,
        scores: Tensor,
        timings_ms: dict[str, float],
    ) -> TrackResult:
        """A result whose full-resolution outputs derive lazily from B x 1 x h x w ``low_res`` logits."""
        result = cls(frame_index, frame_hw, object_ids, None, scores, None, None, timings_ms)
        result.__dict__["_low_res"] = low_res
        return result

    def _derive(self, name: str) -> Tensor:
        """Compute a lazy field: bilinear upsampling (as Meta's predictor), boxes by row/column maxima."""
        if name == "logits":
            low_res = self.__dict__.get("_low_res")
            if low_res is None:
                raise ValueError("TrackResult.logits was neither given nor derivable (no low-res logits)")
            return upsample_logits(low_res.float(), self.frame_hw)[:, 0]
        boxes, nonempty = boxes_from_logits(self.logits)
        self.__dict__["_boxes"] = boxes
        self.__dict__["_visible"] = (self.scores > 0) & nonempty
        return self.__dict__["_" + name]

    @property
    def masks(self) -> Tensor:
        return self.logits > 0

    @property
    def objects(self) -> list[ObjectResult]:
        """Per-object host copies (one device->host transfer for the whole batch)."""
        if not self.object_ids:
            return []
        masks = self.masks.cpu().numpy()
        scores = self.scores.float().cpu().numpy()
        boxes = self.boxes.cpu().numpy()
        visible = self.visible.cpu().numpy()
        return [
            ObjectResult(
                oid,
                masks[i],
                float(scores[i]),
                bool(visible[i]),
                tuple(float(v) for v in boxes[i]) if masks[i].any() else None,
                self.states.get(oid),
            )
            for i, oid in enumerate(self.object_ids)
        ]

    def label_image(self) -> np.ndarray:
        """H x W uint8: object id where that object's mask wins, 0 = background.

        Overlaps go to the object with the highest logit. Ids must be 1..255.
        """
        if any(not 0 < oid < 256 for oid in self.object_ids):
            raise ValueError(f"label images hold object ids 1..255, got {self.object_ids}")
        h, w = self.frame_hw
        if not self.object_ids:
            return np.zeros((h, w), dtype=np.uint8)
        best, winner = self.logits.max(dim=0)  # one pass: max > 0 iff any mask covers the pixel
        ids = torch.tensor(self.object_ids, dtype=torch.uint8, device=best.device)
        labels = torch.where(best > 0, ids[winner], torch.zeros((), dtype=torch.uint8, device=best.device))
        return labels.cpu().numpy().reshape(h, w)
