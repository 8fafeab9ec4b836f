"""Overlay drawing shared by the CLI's writers and the node's overlay topic.

It lives below both (``sam2_ros.io`` and ``sam2_ros.ros``) so that neither imports the other for
colours: an object has the same colour in ``overlay.mp4``, ``segment``'s overlays and the node's
``~/overlay`` image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from sam2_ros.tracking.results import ObjectResult

OVERLAY_ALPHA = 0.5


def object_color(obj_id: int) -> tuple[int, int, int]:
    """A stable BGR colour per id; golden-ratio hue steps keep neighbouring ids apart."""
    hue = int((obj_id * 0.618033988749895) % 1.0 * 180)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_overlay(frame_rgb: np.ndarray, labels: np.ndarray, objects: list[ObjectResult]) -> np.ndarray:
    """BGR frame with each object's pixels of the label image tinted, its box, id and presence probability.

    Tinting the label image (not each raw mask) shows overlaps exactly as ``masks/`` stores them.
    """
    out = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    for obj in objects:
        color = np.array(object_color(obj.obj_id), dtype=np.float32)
        region = labels == obj.obj_id
        out[region] = (out[region] * (1 - OVERLAY_ALPHA) + color * OVERLAY_ALPHA).astype(np.uint8)
        if obj.box is not None:
            x1, y1, x2, y2 = (round(v) for v in obj.box)
            c = tuple(int(v) for v in color)
            cv2.rectangle(out, (x1, y1), (x2, y2), c, 2)
            cv2.putText(
                out,
                f"{obj.obj_id} {obj.probability:.2f}",
                (x1, max(y1 - 6, 12)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                c,
                2,
                cv2.LINE_AA,
            )
    draw_states(out, [(o.obj_id, o.track) for o in objects if o.track is not None])
    return out


def draw_states(image: np.ndarray, states: list[tuple[int, Any]], rgb: bool = False) -> None:
    """Write each object's track state that is not TRACKING in the top-left corner, in its colour.

    ``states``: (object id, ``ObjectTrackState``); ``image`` (BGR, or RGB if ``rgb``) is drawn on in place.
    """
    y = 20
    for obj_id, track in states:
        if track.state.name == "TRACKING":
            continue
        text = f"{obj_id} {track.state.name.lower()} ({track.frames_since_seen} f)"
        if track.refused:
            text += " implausible mask"
        color = object_color(obj_id)[::-1] if rgb else object_color(obj_id)
        cv2.putText(image, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2, cv2.LINE_AA)
        y += 22
