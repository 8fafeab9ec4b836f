"""A tracker result's objects in 3-D: one call from ``TrackResult`` + depth to per-object host records.

Why: the node, the bag replay and ``sam2-ros track --depth`` all need the same per-object
numbers (for messages, ``summary.json``); this keeps the one device->host copy in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sam2_ros.geometry.locate import locate_objects


@dataclass
class Object3D:
    """One object's 3-D estimate on one frame (camera optical frame, metres; see ``ObjectLocations``).

    ``valid`` False: too few depth samples; the numbers are then NaN.
    """

    obj_id: int
    position: tuple[float, float, float]
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    num_samples: int
    valid: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes null), millimetre-rounded."""

        def r(values):
            return [round(v, 4) if v == v else None for v in values]

        return {
            "position": r(self.position),
            "center": r(self.center),
            "size": r(self.size),
            "samples": self.num_samples,
            "valid": self.valid,
        }


def locate_result(
    result: Any, depth: Any, intrinsics: Any, depth_scale: float | None = None, object_ids: list[int] | None = None
) -> list[Object3D]:
    """3-D of the visible objects of a ``TrackResult`` (or of ``object_ids`` among them), in result order.

    Invisible objects are left out: their mask, if any, is not the object.
    """
    wanted = set(result.object_ids if object_ids is None else object_ids)
    visible = result.visible.cpu().tolist()
    rows = [i for i, obj_id in enumerate(result.object_ids) if obj_id in wanted and visible[i]]
    if not rows:
        return []
    masks = result.masks[torch.tensor(rows, device=result.visible.device)]
    loc = locate_objects(masks, depth, intrinsics, depth_scale).cpu()
    return [
        Object3D(
            result.object_ids[i],
            tuple(loc.position[k].tolist()),
            tuple(loc.center[k].tolist()),
            tuple(loc.extent[k].tolist()),
            int(loc.num_samples[k]),
            bool(loc.valid[k]),
        )
        for k, i in enumerate(rows)
    ]
