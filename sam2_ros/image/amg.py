"""Building blocks of automatic mask generation (Meta's ``sam2.utils.amg``, in torch/numpy).

Point grids, crop boxes, the stability score, box NMS and RLE encodings. Kept free of
torchvision (which the package does not depend on): ``batched_nms`` is a small greedy NMS
with torchvision's semantics (descending score, suppress IoU > threshold, per category).
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import numpy as np
import torch
from torch import Tensor


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n) x 2 points evenly spaced in [0, 1]^2, cell centres, x fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer i has ``n_per_side / scale_per_layer**i`` points a side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (x0, y0, x1, y1) and their layer: the whole image, then (2^i)^2 overlapping crops per layer i."""
    crop_boxes, layer_idxs = [], []
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes.append([0, 0, im_w, im_h])
    layer_idxs.append(0)

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_crops_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops_per_side))
        crop_w = crop_len(im_w, n_crops_per_side, overlap)
        crop_h = crop_len(im_h, n_crops_per_side, overlap)
        xs = [int((crop_w - overlap) * i) for i in range(n_crops_per_side)]
        ys = [int((crop_h - overlap) * i) for i in range(n_crops_per_side)]
        for x0, y0 in product(xs, ys):
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(i_layer + 1)
    return crop_boxes, layer_idxs


def stability_score(mask_logits: Tensor, mask_threshold: float, offset: float) -> Tensor:
    """IoU of the masks cut at ``threshold + offset`` and ``threshold - offset`` (B x H x W -> B).

    An empty mask scores NaN (0 / 0), which no stability threshold keeps, as in Meta's code.
    """
    inter = (mask_logits > (mask_threshold + offset)).sum(dim=(-1, -2), dtype=torch.int32)
    union = (mask_logits > (mask_threshold - offset)).sum(dim=(-1, -2), dtype=torch.int32)
    return inter / union


def box_area(boxes: Tensor) -> Tensor:
    """(x2 - x1) * (y2 - y1) per N x 4 box (torchvision's convention: no +1)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """N x M IoU of two sets of x1, y1, x2, y2 boxes."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def batched_nms(boxes: Tensor, scores: Tensor, categories: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS per category: indices of kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box of the same category
    exceeds ``iou_threshold`` (torchvision's ``batched_nms`` rule; ties keep input order).
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].double()
    cat = categories[order]
    overlap = (box_iou(b, b) > iou_threshold) & (cat[:, None] == cat[None, :])
    overlap = overlap.cpu().numpy()
    removed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= overlap[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def is_box_near_crop_edge(boxes: Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0) -> Tensor:
    """Boxes (in crop coordinates) touching a crop edge that is not also an image edge."""
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = (boxes + _offset(crop_box, boxes.device, 4)).float()
    near_crop = torch.isclose(boxes, crop[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, orig[None, :], atol=atol, rtol=0)
    return torch.any(near_crop & ~near_image, dim=1)


def uncrop_boxes_xyxy(boxes: Tensor, crop_box: list[int]) -> Tensor:
    return boxes + _offset(crop_box, boxes.device, 4)


def uncrop_points(points: Tensor, crop_box: list[int]) -> Tensor:
    return points + _offset(crop_box, points.device, 2)


def _offset(crop_box: list[int], device: torch.device, n: int) -> Tensor:
    x0, y0 = crop_box[:2]
    return torch.tensor([[x0, y0] * (n // 2)], device=device)


def uncrop_mask(mask: np.ndarray, crop_box: list[int], orig_h: int, orig_w: int) -> np.ndarray:
    """A crop's H' x W' mask placed into the full H x W image."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return mask
    full = np.zeros((orig_h, orig_w), dtype=mask.dtype)
    full[y0:y1, x0:x1] = mask
    return full


def box_xyxy_to_xywh(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """Meta's uncompressed RLE: column-major run lengths, starting with a (possibly empty) run of zeros."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [h * w]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [h, w], "counts": counts}


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE (pycocotools), ``counts`` as a str so it serialises to JSON."""
    from pycocotools import mask as mask_utils  # noqa: PLC0415 - optional extra (annotate), loaded only when used

    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle
