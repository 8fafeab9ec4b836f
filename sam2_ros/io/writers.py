"""Outputs of the ``track`` command, one writer per artefact.

* ``masks/NNNNN.png``: 8-bit label image, pixel value = object id, 0 = background;
* ``logits/NNNNN.npz``: one float32 H x W array of mask logits per object, keyed by id;
* ``overlay.mp4``: the input with translucent masks, boxes and ids, for eyeballing;
* ``summary.json``: run settings, per-frame scores/boxes/timings and latency totals.

Per-frame files are written to a temporary name and renamed, so a run killed mid-write
never leaves a truncated PNG or npz that a later script would trip over.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from sam2_ros.errors import OutputError
from sam2_ros.utils.draw import draw_overlay
from sam2_ros.utils.files import atomic_write

if TYPE_CHECKING:
    from sam2_ros.tracking.results import ObjectResult


def frame_name(index: int, suffix: str) -> str:
    """``00042.png``: zero-padded so that lexical order is frame order."""
    return f"{index:05d}{suffix}"


class MaskWriter:
    """``DIR/masks/NNNNN.png`` label images (lossless PNG keeps ids exact)."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "masks"
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, index: int, labels: np.ndarray) -> None:
        ok, png = cv2.imencode(".png", labels)
        if not ok:
            raise OutputError(f"could not encode the label image of frame {index}")
        atomic_write(self.dir / frame_name(index, ".png"), png.tobytes(), fsync=False)


class LogitsWriter:
    """``DIR/logits/NNNNN.npz``: raw mask logits, for users who threshold or fuse themselves."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "logits"
        self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, index: int, object_ids: list[int], logits: np.ndarray) -> None:
        """``logits``: B x H x W, row i belonging to ``object_ids[i]``."""
        buf = io.BytesIO()
        np.savez(buf, **{str(oid): logits[i].astype(np.float32, copy=False) for i, oid in enumerate(object_ids)})
        atomic_write(self.dir / frame_name(index, ".npz"), buf.getvalue(), fsync=False)


class OverlayWriter:
    """``DIR/overlay.mp4`` (mp4v), opened on the first frame, when its size is known."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame_rgb: np.ndarray, labels: np.ndarray, objects: list[ObjectResult]) -> None:
        if self._writer is None:
            h, w = frame_rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise OutputError(f"cannot open {self.path} for writing an mp4v video")
        self._writer.write(draw_overlay(frame_rgb, labels, objects))

    def close(self) -> None:
        """Finish the file; without this the mp4 has no index and most players refuse it."""
        if self._writer is not None:
            self._writer.release()


class RunSummary:
    """Collects per-frame results and writes ``summary.json`` (temp file + rename).

    ``latency_ms`` of a frame is tracking plus prompts plus copying the results to the
    host: what a live caller waits for before it can publish the frame's masks. Reading
    the input and writing files are excluded; they are in ``wall_s``.
    """

    def __init__(self, header: dict[str, Any]) -> None:
        self.header = header
        self.frame_hw: tuple[int, int] | None = None
        self.frames: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        """Record a warning for ``summary.json`` (``print_warnings`` shows each once, after the progress bar)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def print_warnings(self) -> None:
        for message in self.warnings:
            print(f"warning: {message}", file=sys.stderr)

    def add(
        self,
        index: int,
        frame_hw: tuple[int, int],
        objects: list[ObjectResult],
        latency_ms: float,
        tracker_ms: dict[str, float],
        prompted: list[int],
        located: list[Any] | None = None,
    ) -> None:
        """Record frame ``index``; ``prompted``: ids prompted on it, ``tracker_ms``: the tracker's breakdown.

        ``located``: the visible objects' ``Object3D`` (with --depth), stored under each object's "3d".
        """
        in_3d = {o.obj_id: o.as_dict() for o in located or []}
        self.frame_hw = frame_hw
        self.frames.append(
            {
                "index": index,
                "objects": [
                    {
                        "id": o.obj_id,
                        "score": round(o.score, 4),
                        "visible": o.visible,
                        "box": None if o.box is None else [round(v, 1) for v in o.box],
                        **({"track": o.track.as_dict()} if o.track is not None else {}),
                        **({"3d": in_3d[o.obj_id]} if o.obj_id in in_3d else {}),
                    }
                    for o in objects
                ],
                "prompted": prompted,
                "latency_ms": round(latency_ms, 3),
                "tracker_ms": {k: round(v, 3) for k, v in tracker_ms.items()},
            }
        )

    def totals(self, wall_s: float) -> dict[str, Any]:
        """Frame count, latency mean/p50/p99, fps = frames / summed latency, and wall time."""
        lat = np.array([f["latency_ms"] for f in self.frames], dtype=np.float64)
        latency: dict[str, float | None] = dict.fromkeys(("mean", "p50", "p99"))
        fps = None
        if len(lat):
            latency = {
                "mean": round(float(lat.mean()), 3),
                "p50": round(float(np.percentile(lat, 50)), 3),
                "p99": round(float(np.percentile(lat, 99)), 3),
            }
            fps = round(1000.0 * len(lat) / float(lat.sum()), 3)
        return {"frames": len(self.frames), "latency_ms": latency, "fps": fps, "wall_s": round(wall_s, 3)}

    def write(self, path: Path, stopped_by: str, wall_s: float) -> None:
        doc = {
            **self.header,
            "frame_hw": self.frame_hw,
            "stopped_by": stopped_by,
            "warnings": self.warnings,
            "totals": self.totals(wall_s),
            "frames": self.frames,
        }
        atomic_write(path, json.dumps(doc, indent=1) + "\n")
