""" "Find every object on the first frame, then track them all": generator records -> tracker prompts.

Automatic masks become mask prompts (``Sam2Tracker.add_mask``) on the tracker's current
frame, one object id each, so the tracker then follows them exactly as if a user had
drawn the masks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sam2_ros.tracking import Sam2Tracker, TrackResult


def select_records(records: list[dict[str, Any]], max_objects: int) -> list[dict[str, Any]]:
    """The ``max_objects`` records the model rates best (predicted IoU, then stability, then area)."""
    ranked = sorted(records, key=lambda r: (r["predicted_iou"], r["stability_score"], r["area"]), reverse=True)
    return ranked[:max_objects]


def record_mask(record: dict[str, Any]) -> np.ndarray:
    """A record's H x W bool mask, whatever the generator's ``output_mode``."""
    seg = record["segmentation"]
    if isinstance(seg, np.ndarray):
        return seg.astype(bool, copy=False)
    counts = seg["counts"]
    if isinstance(counts, list):  # Meta's uncompressed RLE: column-major runs, zeros first
        h, w = seg["size"]
        values = np.arange(len(counts)) % 2 == 1
        return np.repeat(values, counts).reshape(w, h).T
    from pycocotools import mask as mask_utils  # noqa: PLC0415 - optional extra (annotate), loaded only when used

    return mask_utils.decode(
        {"size": seg["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    ).astype(bool)


def prompt_tracker_with_records(
    tracker: Sam2Tracker, records: list[dict[str, Any]], first_id: int = 1
) -> TrackResult | None:
    """Add each record as a new object (ids ``first_id``, ``first_id + 1``, ...) on the current frame.

    Returns the frame's result after the last prompt (None when there are no records).
    The caller decides how many to track (``select_records``); ids already tracked are
    refined, not duplicated.
    """
    result = None
    for i, record in enumerate(records):
        result = tracker.add_mask(first_id + i, record_mask(record))
    return result


def prompt_everything(
    tracker: Sam2Tracker, frame: np.ndarray, max_objects: int, **generator_kwargs: Any
) -> TrackResult | None:
    """Run the automatic mask generator on ``frame`` (the tracker's current frame) and track the best masks.

    Needs the eager torch backend (the generator runs the model's prompt heads directly);
    ``generator_kwargs`` are ``AutomaticMaskGenerator``'s (Meta's defaults otherwise).
    """
    from sam2_ros.image.generator import AutomaticMaskGenerator  # noqa: PLC0415 - torch-free module: the model code loads only when a prompt needs it (and no import cycle)

    model = getattr(tracker.backend, "model", None)
    if model is None:
        raise ValueError(
            f"automatic masks need --backend torch (the {tracker.backend.name} backend runs exported "
            f"graphs without the model)"
        )
    records = AutomaticMaskGenerator(model, **generator_kwargs).generate(frame)
    return prompt_tracker_with_records(tracker, select_records(records, max_objects))
