"""Pre- and post-processing that run on the backend's device.

Resizing uses bicubic interpolation with antialiasing and rounds to 8-bit levels, close to
Pillow's ``Image.resize`` (what Meta's video loader uses) without a host round trip per
frame: at most 9 grey levels apart at high-contrast edges, where Pillow rounds between its
two passes, and 0.2 on average (tests/test_preprocessing_pillow.py).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2_ros.tracking.errors import FrameError

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


def check_frame(frame: np.ndarray | Tensor) -> tuple[int, int]:
    """Validate an RGB frame (H x W x 3 uint8); return (H, W)."""
    shape = tuple(frame.shape)
    dtype = frame.dtype
    if len(shape) != 3 or shape[2] != 3:
        raise FrameError(f"expected an RGB frame of shape H x W x 3, got shape {shape}")
    if shape[0] < 1 or shape[1] < 1:
        raise FrameError(f"empty frame of shape {shape}")
    if dtype not in (np.uint8, torch.uint8):
        raise FrameError(f"expected uint8 pixels, got {dtype}")
    return shape[0], shape[1]


def preprocess(frame: np.ndarray | Tensor, image_size: int, device: torch.device) -> Tensor:
    """H x W x 3 uint8 RGB -> 1 x 3 x S x S normalised float32 on ``device``."""
    check_frame(frame)
    if isinstance(frame, np.ndarray):
        # torch wants writable memory; decoded frames (PIL, ROS buffers) are often read-only.
        frame = np.ascontiguousarray(frame) if frame.flags.writeable else frame.copy()
    t = torch.as_tensor(frame)
    t = t.to(device, non_blocking=True).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(image_size, image_size), mode="bicubic", antialias=True, align_corners=False)
    t = t.round_().clamp_(0, 255).div_(255.0)
    mean, std = _normalisation(torch.device(device))
    return (t - mean) / std


@functools.lru_cache(maxsize=8)
def _normalisation(device: torch.device) -> tuple[Tensor, Tensor]:
    """ImageNet mean and std as 1 x 3 x 1 x 1 tensors on ``device``, made once (no per-frame upload)."""
    mean = torch.tensor(IMG_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMG_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def upsample_logits(low_res: Tensor, size: tuple[int, int]) -> Tensor:
    """B x 1 x h x w mask logits -> B x 1 x H x W (bilinear, as Meta's predictor)."""
    if tuple(low_res.shape[-2:]) == tuple(size):
        return low_res
    return F.interpolate(low_res, size=size, mode="bilinear", align_corners=False)


def boxes_from_masks(masks: Tensor) -> tuple[Tensor, Tensor]:
    """B x H x W bool -> (B x 4 float boxes x1, y1, x2, y2 in pixels, inclusive; B nonempty flags)."""
    return _boxes_from_profiles(masks.any(dim=2), masks.any(dim=1))


def boxes_from_logits(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``boxes_from_masks(logits > 0)`` without materialising the B x H x W mask.

    Two max-reductions over the logits give each row's and column's "any pixel > 0" directly
    (max > 0 iff some value > 0), so no full-resolution boolean tensor is written.
    """
    return _boxes_from_profiles(logits.amax(dim=2) > 0, logits.amax(dim=1) > 0)


def _boxes_from_profiles(rows: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes from B x H row and B x W column occupancy."""
    h, w = rows.shape[1], cols.shape[1]
    nonempty = rows.any(dim=1)
    ys = torch.arange(h, device=rows.device)
    xs = torch.arange(w, device=cols.device)
    y1 = torch.where(rows, ys, h).min(dim=1).values
    y2 = torch.where(rows, ys, -1).max(dim=1).values
    x1 = torch.where(cols, xs, w).min(dim=1).values
    x2 = torch.where(cols, xs, -1).max(dim=1).values
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    return torch.where(nonempty[:, None], boxes, torch.zeros_like(boxes)), nonempty


def fill_holes(low_res: Tensor, max_area: int) -> Tensor:
    """Fill background holes of at most ``max_area`` pixels with logit 0.1 (Meta's rule).

    Meta computes 8-connected background components with a CUDA extension and silently
    skips this step without it; we use OpenCV on the (small, 4H x 4W) low-res masks so the
    post-processing is the same on every device.
    """
    if max_area <= 0:
        return low_res
    import cv2  # noqa: PLC0415 - only hole filling needs OpenCV; the rest of the tracker runs on torch alone

    background = (low_res <= 0).squeeze(1).to(torch.uint8).cpu().numpy()
    holes = np.zeros_like(background, dtype=bool)
    for i, bg in enumerate(background):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= max_area)
        small = small[small > 0]  # label 0 is the foreground here
        if len(small):
            holes[i] = np.isin(labels, small)
    if not holes.any():
        return low_res
    holes_t = torch.from_numpy(holes).to(low_res.device)[:, None]
    return torch.where(holes_t, torch.tensor(0.1, dtype=low_res.dtype, device=low_res.device), low_res)
