"""What ``Sam2Tracker`` returns for a frame: device tensors plus cheap host views."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

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


@dataclass
class TrackResult:
    """All tracked objects on frame ``frame_index``; tensors stay on the device.

    ``logits``: B x H x W mask logits at the input resolution; ``scores``: B presence
    logits; ``boxes``: B x 4; ``visible``: B bools. Row i belongs to ``object_ids[i]``.
    """

    frame_index: int
    frame_hw: tuple[int, int]
    object_ids: list[int]
    logits: Tensor
    scores: Tensor
    boxes: Tensor
    visible: Tensor
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Track state per object id (``Sam2Tracker.states``; observation only, see ``track_state``).
    states: dict[int, ObjectTrackState] = field(default_factory=dict)

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
            ObjectResult(oid, masks[i], float(scores[i]), bool(visible[i]),
                         tuple(float(v) for v in boxes[i]) if masks[i].any() else None, self.states.get(oid))
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
        best = self.logits.argmax(dim=0)
        ids = torch.tensor(self.object_ids, dtype=torch.uint8, device=self.logits.device)
        labels = torch.where(self.masks.any(dim=0), ids[best], torch.zeros((), dtype=torch.uint8,
                                                                           device=self.logits.device))
        return labels.cpu().numpy().reshape(h, w)
