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

:func:`install_reference_torchvision` serves the EdgeTAM reference subprocess
(``tests/edgetam_reference_worker.py``): ``timm`` imports much of torchvision at import time
(``torchvision.ops.misc.FrozenBatchNorm2d``, ``torchvision.transforms.InterpolationMode``,
transform classes to subclass, dataset classes) but RepViT runs none of it. There every
``torchvision.*`` module is a stand-in: the names above and ``FrozenBatchNorm2d`` /
``InterpolationMode`` are real, any other name is a placeholder class that raises when used.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.abc
import importlib.machinery
import importlib.util
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


# ----------------------------------------------------------- EdgeTAM reference subprocess
class InterpolationMode(enum.Enum):
    """torchvision.transforms.InterpolationMode (names and values)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class FrozenBatchNorm2d(nn.Module):
    """torchvision.ops.misc.FrozenBatchNorm2d: BatchNorm2d with fixed statistics and affine."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class _Placeholder:
    """Stands for a torchvision name the reference imports but never uses."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError(f"torchvision stand-in: {type(self).__qualname__} is not available in tests")


class _StandinModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = type(name, (_Placeholder,), {"__qualname__": f"{self.__name__}.{name}"})
        setattr(self, name, placeholder)
        return placeholder


class _StandinFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports any ``torchvision.*`` module as a :class:`_StandinModule`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandinModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        parent, _, child = module.__name__.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def install_reference_torchvision() -> None:
    """Make ``torchvision`` importable in this (reference-only) process; see the module docstring."""
    if importlib.util.find_spec("torchvision") is not None and not isinstance(
        sys.modules.get("torchvision"), _StandinModule
    ):
        raise RuntimeError("a real torchvision is installed; the stand-in would shadow it")
    sys.meta_path.insert(0, _StandinFinder())
    import torchvision.ops.boxes as boxes_mod
    import torchvision.ops.misc as misc
    import torchvision.transforms as transforms_mod
    import torchvision.transforms.functional as functional

    torchvision = sys.modules["torchvision"]
    torchvision.__version__ = "0.0.0+standin"
    misc.FrozenBatchNorm2d = FrozenBatchNorm2d
    transforms_mod.InterpolationMode = functional.InterpolationMode = InterpolationMode
    transforms_mod.ToTensor, transforms_mod.Resize, transforms_mod.Normalize = ToTensor, Resize, Normalize
    boxes_mod.batched_nms, boxes_mod.box_area = batched_nms, box_area
