"""A test-only stand-in for the few torchvision functions Meta's image code calls.

``sam2.utils.transforms`` (used by ``SAM2ImagePredictor``) imports
``torchvision.transforms.{Normalize, Resize, ToTensor}`` and ``sam2.automatic_mask_generator``
imports ``torchvision.ops.boxes.{batched_nms, box_area}``. torchvision must not be installed
here, so :func:`fake_torchvision` puts minimal modules with those names into ``sys.modules``
while Meta's modules are imported and used. The package never imports any of this.

They follow torchvision's tensor code paths: ``ToTensor`` is HWC uint8 -> CHW float / 255;
``Resize`` on a float tensor is ``F.interpolate(bilinear, align_corners=False,
antialias=True)`` (torchvision >= 0.17 default); ``Normalize`` is ``(x - mean) / std``;
``batched_nms`` is a plain O(n^2) greedy NMS per category (descending score, drop IoU >
threshold), written independently of ``sam2_ros.image.amg.batched_nms``.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn


class ToTensor:
    def __call__(self, pic: np.ndarray) -> torch.Tensor:
        img = torch.from_numpy(np.ascontiguousarray(pic.transpose((2, 0, 1)))).contiguous()
        return img.to(dtype=torch.get_default_dtype()).div(255)


class Resize(nn.Module):
    def __init__(self, size) -> None:
        super().__init__()
        self.size: list[int] = [int(s) for s in size]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x.unsqueeze(0), size=self.size, mode="bilinear", align_corners=False, antialias=True
        ).squeeze(0)


class Normalize(nn.Module):
    def __init__(self, mean, std) -> None:
        super().__init__()
        self.mean: list[float] = [float(m) for m in mean]
        self.std: list[float] = [float(s) for s in std]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def reference_nms(
    boxes: list[list[float]], scores: list[float], categories: list[int], iou_threshold: float
) -> list[int]:
    """Textbook greedy NMS on python lists: the reference the package's NMS is tested against."""

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # python sort is stable
    keep: list[int] = []
    for i in order:
        if all(categories[i] != categories[k] or iou(boxes[i], boxes[k]) <= iou_threshold for k in keep):
            keep.append(i)
    return keep


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    keep = reference_nms(boxes.double().tolist(), scores.double().tolist(), idxs.tolist(), iou_threshold)
    return torch.tensor(keep, dtype=torch.int64)


@contextlib.contextmanager
def fake_torchvision() -> Iterator[None]:
    """Install the stand-in while Meta's image modules are imported (and stay importable)."""
    pytest.importorskip("sam2", reason="official sam2==1.1.0 is needed for parity tests")
    tv = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.ToTensor, transforms.Resize, transforms.Normalize = ToTensor, Resize, Normalize
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms, boxes.box_area = batched_nms, box_area
    tv.transforms, tv.ops, ops.boxes = transforms, ops, boxes
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in {
            "torchvision": tv,
            "torchvision.transforms": transforms,
            "torchvision.ops": ops,
            "torchvision.ops.boxes": boxes,
        }.items():
            mp.setitem(sys.modules, name, mod)
        for name in ("sam2.utils.transforms", "sam2.sam2_image_predictor", "sam2.automatic_mask_generator"):
            mp.delitem(sys.modules, name, raising=False)
        yield


def official_feat_sizes(image_size: int) -> list[tuple[int, int]]:
    """Meta's predictor hard-codes the 1024-px feature sizes; the reduced-size tests set these."""
    return [(image_size // 4,) * 2, (image_size // 8,) * 2, (image_size // 16,) * 2]
