"""Masked depth pixels as labelled 3-D points (the node's optional PointCloud2), subsampled on a pixel grid.

Why a stride: a 640x480 mask holds up to 300 k points, far more than a planner or RViz needs at
camera rate; every ``stride``-th pixel in x and y keeps the shape at 1/stride² of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from sam2_ros.geometry.locate import prepare


def masked_points(
    masks: Any,
    depth: Any,
    intrinsics: Any,
    labels: Sequence[int] | None = None,
    depth_scale: float | None = None,
    stride: int = 4,
) -> tuple[Tensor, Tensor]:
    """(M x 3 float32 points in metres, camera optical frame; M int64 labels) of every mask's pixels with depth.

    Same inputs as ``locate_objects``; ``labels``: one per mask (default 1..N). Pixels on the
    grid ``(stride * i, stride * j)`` of the depth image are used; a pixel in two masks gives
    a point for each.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    m, z, intr = prepare(masks, depth, intrinsics, depth_scale)
    n = m.shape[0]
    names = list(range(1, n + 1)) if labels is None else [int(v) for v in labels]
    if len(names) != n:
        raise ValueError(f"{n} masks but {len(names)} labels")
    zs = z[::stride, ::stride]
    sub = m[:, ::stride, ::stride] & ~torch.isnan(zs)[None]
    obj, v, u = sub.nonzero(as_tuple=True)
    depth_at = zs[v, u]
    u = (u * stride).to(torch.float32)
    v = (v * stride).to(torch.float32)
    points = torch.stack([(u - intr.cx) * depth_at / intr.fx, (v - intr.cy) * depth_at / intr.fy, depth_at], dim=1)
    lut = torch.tensor(names, dtype=torch.long, device=m.device)
    return points, lut[obj] if n else torch.zeros(0, dtype=torch.long, device=m.device)
