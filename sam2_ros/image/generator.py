"""Automatic masks: Meta's ``SAM2AutomaticMaskGenerator`` (sam2==1.1.0) on our model.

Prompt SAM with a grid of single clicks (optionally again on overlapping crops), keep the
masks the model itself rates well (predicted IoU) and that do not change when the logit
threshold moves (stability), drop duplicates with box NMS, and return Meta's records.
Same arguments, defaults and record keys as Meta's class, so code written for it runs
unchanged; results match it on identical weights (``tests/test_image_amg.py``).

``min_mask_region_area`` follows sam2 1.1.0: it becomes the image predictor's hole and
sprinkle area, applied to the low-res logits of every candidate before the filters (Meta
runs that step only where its CUDA extension is built; here OpenCV runs it everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sam2_ros.image import amg
from sam2_ros.image.predictor import SamImagePredictor
from sam2_ros.model.sam2 import Sam2Model
from sam2_ros.tracking.imageops import boxes_from_masks, check_frame

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


@dataclass
class _Masks:
    """Surviving candidates of one crop (or of the whole image), row-aligned."""

    masks: list[np.ndarray] = field(default_factory=list)  # H' x W' bool, crop resolution
    boxes: list[Tensor] = field(default_factory=list)  # N x 4 xyxy, crop coordinates
    iou_preds: list[Tensor] = field(default_factory=list)
    points: list[Tensor] = field(default_factory=list)  # N x 2, crop pixels
    stability: list[Tensor] = field(default_factory=list)

    def add(self, masks: Tensor, boxes: Tensor, iou_preds: Tensor, points: Tensor, stability: Tensor) -> None:
        self.masks.extend(masks.cpu().numpy())
        self.boxes.append(boxes.float().cpu())
        self.iou_preds.append(iou_preds.float().cpu())
        self.points.append(points.float().cpu())
        self.stability.append(stability.float().cpu())

    def cat(self) -> tuple[list[np.ndarray], Tensor, Tensor, Tensor, Tensor]:
        def c(ts: list[Tensor], width: int | None) -> Tensor:
            return torch.cat(ts) if ts else torch.zeros((0, width) if width else (0,))

        return self.masks, c(self.boxes, 4), c(self.iou_preds, None), c(self.points, 2), c(self.stability, None)


class AutomaticMaskGenerator:
    """Masks for everything in an image (Meta's arguments and defaults; see its docstring).

    ``generate(image)`` returns one dict per mask: ``segmentation`` (H x W bool, or an RLE
    dict for the RLE ``output_mode``s), ``area``, ``bbox`` (x, y, w, h), ``predicted_iou``,
    ``point_coords`` ([[x, y]], the click that made it), ``stability_score`` and
    ``crop_box`` (x, y, w, h).
    """

    def __init__(
        self,
        model: Sam2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if points_per_side is not None:
            if points_per_side < 1:
                raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
            point_grids = amg.build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        if len(point_grids) < crop_n_layers + 1:
            raise ValueError(
                f"crop_n_layers={crop_n_layers} needs {crop_n_layers + 1} point grids, got {len(point_grids)}"
            )
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"unknown output_mode {output_mode!r}; choose one of {', '.join(OUTPUT_MODES)}")
        if points_per_batch < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
        self.point_grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
        self.predictor = SamImagePredictor(
            model, max_hole_area=min_mask_region_area, max_sprinkle_area=min_mask_region_area
        )
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output

    @torch.inference_mode()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """All masks in an H x W x 3 uint8 RGB image, as Meta's records (see the class docstring)."""
        h, w = check_frame(image)
        crop_boxes, layer_idxs = amg.generate_crop_boxes((h, w), self.crop_n_layers, self.crop_overlap_ratio)
        masks: list[np.ndarray] = []
        crops: list[list[int]] = []
        parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
            m, boxes, ious, points, stab = self._process_crop(image, crop_box, layer_idx, (h, w))
            masks.extend(m)
            crops.extend([crop_box] * len(m))
            parts.append((boxes, ious, points, stab))
        boxes, ious, points, stab = (torch.cat(p) for p in zip(*parts))
        if len(crop_boxes) > 1 and len(masks):
            # Duplicates between crops: prefer the mask from the smaller crop.
            crop_t = torch.tensor(crops, dtype=torch.float32)
            keep = amg.batched_nms(boxes, 1 / amg.box_area(crop_t), torch.zeros(len(boxes)), self.crop_nms_thresh)
            masks, crops = [masks[i] for i in keep.tolist()], [crops[i] for i in keep.tolist()]
            boxes, ious, points, stab = boxes[keep], ious[keep], points[keep], stab[keep]
        records = []
        for i, crop_box in enumerate(crops):
            full = amg.uncrop_mask(masks[i], crop_box, h, w)
            records.append(
                {
                    "segmentation": self._encode(full),
                    "area": int(full.sum()),
                    "bbox": amg.box_xyxy_to_xywh(boxes[i].tolist()),
                    "predicted_iou": float(ious[i]),
                    "point_coords": [points[i].tolist()],
                    "stability_score": float(stab[i]),
                    "crop_box": [float(v) for v in amg.box_xyxy_to_xywh(crop_box)],
                }
            )
        return records

    def _encode(self, mask: np.ndarray) -> Any:
        if self.output_mode == "coco_rle":
            return amg.coco_rle(mask)
        if self.output_mode == "uncompressed_rle":
            return amg.uncompressed_rle(mask)
        return mask

    def _process_crop(
        self, image: np.ndarray, crop_box: list[int], layer_idx: int, orig_hw: tuple[int, int]
    ) -> tuple[list[np.ndarray], Tensor, Tensor, Tensor, Tensor]:
        """One crop: encode it, run the grid in batches, filter, NMS; boxes/points back in image pixels."""
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_hw = crop.shape[:2]
        self.predictor.set_image(crop)
        points_for_image = self.point_grids[layer_idx] * np.array(crop_hw)[None, ::-1]
        kept = _Masks()
        for start in range(0, len(points_for_image), self.points_per_batch):
            self._process_batch(
                points_for_image[start : start + self.points_per_batch], crop_hw, crop_box, orig_hw, kept
            )
        self.predictor.reset_predictor()
        masks, boxes, ious, points, stab = kept.cat()
        keep = amg.batched_nms(boxes, ious, torch.zeros(len(boxes)), self.box_nms_thresh)
        idx = keep.tolist()
        return (
            [masks[i] for i in idx],
            amg.uncrop_boxes_xyxy(boxes[keep], crop_box),
            ious[keep],
            amg.uncrop_points(points[keep], crop_box),
            stab[keep],
        )

    def _process_batch(
        self,
        points_np: np.ndarray,
        crop_hw: tuple[int, int],
        crop_box: list[int],
        orig_hw: tuple[int, int],
        kept: _Masks,
    ) -> None:
        pred = self.predictor
        points = torch.as_tensor(points_np, dtype=torch.float32, device=pred.device)
        in_points = pred.transform_coords(points, normalize=True)
        labels = torch.ones(len(in_points), dtype=torch.int32, device=pred.device)
        masks, ious, low_res = pred.predict_torch(
            in_points[:, None], labels[:, None], multimask_output=self.multimask_output, return_logits=True
        )
        masks, ious = masks.flatten(0, 1), ious.flatten(0, 1)
        points = points.repeat_interleave(masks.shape[0] // len(points), dim=0)
        if self.use_m2m:
            # One refinement step: each candidate's own low-res logits as a mask prompt.
            masks, ious = self._refine_with_m2m(
                in_points.repeat_interleave(masks.shape[0] // len(in_points), dim=0), low_res.flatten(0, 1)
            )
        keep = ious > self.pred_iou_thresh if self.pred_iou_thresh > 0.0 else torch.ones_like(ious, dtype=torch.bool)
        masks, ious, points = masks[keep], ious[keep], points[keep]
        stab = amg.stability_score(masks, self.mask_threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            keep = stab >= self.stability_score_thresh
            masks, ious, points, stab = masks[keep], ious[keep], points[keep], stab[keep]
        binary = masks > self.mask_threshold
        boxes, _ = boxes_from_masks(binary)
        orig_h, orig_w = orig_hw
        keep = ~amg.is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
        kept.add(binary[keep], boxes[keep], ious[keep], points[keep], stab[keep])

    def _refine_with_m2m(self, in_points: Tensor, low_res: Tensor) -> tuple[Tensor, Tensor]:
        labels = torch.ones(len(in_points), dtype=torch.int32, device=in_points.device)
        masks, ious = [], []
        for s in range(0, len(in_points), self.points_per_batch):
            sl = slice(s, s + self.points_per_batch)
            m, iou, _ = self.predictor.predict_torch(
                in_points[sl, None], labels[sl, None], low_res[sl, None], multimask_output=False, return_logits=True
            )
            masks.append(m[:, 0])
            ious.append(iou[:, 0])
        return torch.cat(masks), torch.cat(ious)
