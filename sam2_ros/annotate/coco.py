"""``annotations.json``: COCO-style instance annotations of one input, one image entry per frame.

Masks are COCO RLE made by ``pycocotools.mask.encode`` from the input's label images (object
``k`` = pixels equal to ``k``), so the RLE decodes to exactly the label PNG's objects. Every
annotation carries its track (``object_id``), presence probability (``score``) and frame; the
single category is ``object`` (the tracker knows instances, not classes). Annotations are
streamed to the file as frames arrive, so memory does not grow with the length of a recording.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

import numpy as np

CATEGORIES = [{"id": 1, "name": "object", "supercategory": "object"}]


class CocoWriter:
    """Writes ``path`` frame by frame; ``close`` completes the JSON (a file never closed is no dataset)."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        self.path = path
        self._fh: TextIO = open(path, "w")
        self._fh.write(
            '{"info": '
            + json.dumps(info)
            + ', "licenses": [], "categories": '
            + json.dumps(CATEGORIES)
            + ',\n "annotations": [\n'
        )
        self._images: list[dict[str, Any]] = []  # one small dict per frame: written at close
        self.annotations = 0

    def add_frame(
        self,
        index: int,
        labels: np.ndarray,
        object_ids: list[int],
        probabilities: list[float],
        file_name: str,
        stamp_ns: int | None = None,
    ) -> int:
        """Add frame ``index`` (image id ``index + 1``) and one annotation per object with pixels in ``labels``."""
        from pycocotools import mask as mask_utils  # noqa: PLC0415 - optional extra (annotate), loaded only when used

        h, w = labels.shape
        image_id = index + 1
        self._images.append(
            {
                "id": image_id,
                "frame_index": index,
                "file_name": file_name,
                "height": h,
                "width": w,
                **({"stamp_ns": stamp_ns} if stamp_ns is not None else {}),
            }
        )
        present = [(oid, p) for oid, p in zip(object_ids, probabilities) if (labels == oid).any()]
        if not present:
            return 0
        binary = np.asfortranarray(np.stack([labels == oid for oid, _ in present], axis=-1).astype(np.uint8))
        rles = mask_utils.encode(binary)
        areas, boxes = mask_utils.area(rles), mask_utils.toBbox(rles)
        for (oid, prob), rle, area, box in zip(present, rles, areas, boxes):
            self.annotations += 1
            ann = {
                "id": self.annotations,
                "image_id": image_id,
                "category_id": 1,
                "object_id": int(oid),
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                "area": int(area),
                "bbox": [float(v) for v in box],
                "iscrowd": 0,
                "score": round(float(prob), 4),
            }
            self._fh.write(("" if self.annotations == 1 else ",\n") + json.dumps(ann))
        return len(present)

    def close(self) -> None:
        self._fh.write('\n],\n "images": ' + json.dumps(self._images) + "}\n")
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()
