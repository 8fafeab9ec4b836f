"""3-D positions and extents of masked objects from a registered depth image, batched on the masks' device.

Why robust statistics: a mask's depth samples are not all on the object. Edges carry "flying
pixels" (depth interpolated between the object and what is behind it), the mask may bleed onto
the background, and depth has holes (0 or NaN). So the mask border is eroded, samples far from
the object's dominant depth (its median) are rejected with a band scaled by their spread (MAD),
the position is the per-axis median of what is left and the extent spans robust percentiles.
The erosion only keeps edge pixels from choosing the dominant depth; the mask's border pixels
at that depth still count, so the extent is not shrunk by it.

Why packed and sorted: objects have different sample counts. All objects' valid samples are
gathered into one flat tensor (one device->host sync for its length, none per object), sorted
once per quantity with the object index as the major key, and every object's quantiles are read
at its own offsets. Nothing loops over objects, so 16 objects cost about one object's sorts.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sam2_ros.errors import InputError
from sam2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError, as_intrinsics

#: Millimetre depth (``16UC1`` of RealSense, ZED, OAK and Kinect drivers) in metres per unit.
DEFAULT_DEPTH_SCALE = 0.001
#: Segment offset of the one-sort segmented quantiles; values must stay below half of it.
_SEGMENT_STRIDE = float(2**20)
#: MAD to standard deviation for normally distributed noise.
_MAD_TO_SIGMA = 1.4826


class ObjectLocations(NamedTuple):
    """Per mask (row i = mask i), in the camera optical frame (x right, y down, z forward), metres.

    * ``position`` N x 3: per-axis median of the inlier samples (a point on the visible surface,
      what a "go to" or "look at" controller wants);
    * ``minimum``/``maximum`` N x 3: the axis-aligned box spanned by the inliers' low and high
      percentiles (default 1st and 99th), widened in x and y by half a pixel's footprint (each
      sample stands for a pixel); only the visible surface is measured, so a box seen square-on
      has a depth extent of about 0, and a flat face of width W spans about (1 - 2p) W;
    * ``num_samples`` N int64: valid depth samples (no hole) in the mask;
    * ``num_inliers`` N int64: those near the dominant depth, which the numbers come from
      (counted among the samples used: about ``max_samples`` per mask at most);
    * ``valid`` N bool: ``num_inliers >= min_samples``. Rows that are not valid hold NaN, never a
      number that looks usable.

    Tensors live on the masks' device.
    """

    position: Tensor
    minimum: Tensor
    maximum: Tensor
    num_samples: Tensor
    num_inliers: Tensor
    valid: Tensor

    @property
    def extent(self) -> Tensor:
        """N x 3 sizes of the box (``maximum - minimum``)."""
        return self.maximum - self.minimum

    @property
    def center(self) -> Tensor:
        """N x 3 centre of the box (what a vision_msgs/BoundingBox3D holds)."""
        return (self.maximum + self.minimum) / 2

    def cpu(self) -> ObjectLocations:
        return ObjectLocations(*(t.cpu() for t in self))


class DepthError(InputError, ValueError):
    """A depth image that cannot be used (type, shape); the text says what is wrong."""


def depth_to_metres(depth: Any, device: torch.device | str, depth_scale: float | None = None) -> Tensor:
    """H x W float32 metres on ``device``; holes (0, negative, NaN, inf) become NaN.

    Integer depth (``16UC1``) is multiplied by ``depth_scale`` (default 0.001 m per unit); float
    depth (``32FC1``) is metres unless ``depth_scale`` says otherwise.
    """
    if isinstance(depth, np.ndarray):
        if depth.dtype.kind in "ui":
            t = torch.from_numpy(depth.astype(np.int32 if depth.dtype.itemsize <= 2 else np.int64))
        elif depth.dtype.kind == "f":
            t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
        else:
            raise DepthError(f"depth must be an integer or float image, got dtype {depth.dtype}")
    elif isinstance(depth, Tensor):
        t = depth
        if t.dtype == torch.bool or t.is_complex():
            raise DepthError(f"depth must be an integer or float image, got dtype {t.dtype}")
    else:
        raise DepthError(f"depth must be a numpy array or a torch tensor, got {type(depth).__name__}")
    if t.dim() == 3 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.dim() != 2:
        raise DepthError(f"depth must be H x W, got shape {tuple(t.shape)}")
    integer = not t.dtype.is_floating_point
    scale = float(depth_scale) if depth_scale is not None else DEFAULT_DEPTH_SCALE if integer else 1.0
    if not scale > 0:
        raise DepthError(f"depth_scale must be > 0, got {depth_scale}")
    t = t.to(device)
    z = (t.to(torch.int32) if t.dtype == torch.uint16 else t).to(torch.float32) * scale
    return torch.where(torch.isfinite(z) & (z > 0), z, torch.full_like(z, float("nan")))


def _as_masks(masks: Any) -> Tensor:
    m = torch.from_numpy(np.asarray(masks)) if not isinstance(masks, Tensor) else masks
    if m.dim() == 2:
        m = m[None]
    if m.dim() != 3:
        raise ValueError(f"masks must be N x H x W (or H x W), got shape {tuple(m.shape)}")
    if m.dtype == torch.bool:
        return m
    if m.dtype.is_floating_point:
        raise ValueError("masks must be bool (or 0/1 integers); threshold float masks or logits first")
    return m != 0


def _masks_on_grid(masks: Tensor, height: int, width: int) -> Tensor:
    """``masks`` resampled to a depth grid of the same view that is a whole-number zoom of theirs."""
    n, h, w = masks.shape
    if (h, w) == (height, width):
        return masks
    s = Fraction(width, w)
    if Fraction(height, h) != s or (s.numerator != 1 and s.denominator != 1):
        raise IntrinsicsError(
            f"depth is {width}x{height} but the masks are {w}x{h}: only the same view at a "
            f"whole-number zoom can be paired (register the depth to the colour image)"
        )
    if s.denominator == 1:  # depth finer than the masks: each mask pixel covers s x s depth pixels
        k = s.numerator
        return masks.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2)
    k = s.denominator  # depth coarser: a depth pixel is in the mask when most of its k x k pixels are
    return F.avg_pool2d(masks[:, None].float(), k)[:, 0] >= 0.5


def prepare(
    masks: Any, depth: Any, intrinsics: Any, depth_scale: float | None = None
) -> tuple[Tensor, Tensor, Intrinsics]:
    """(masks on the depth grid, depth in metres with NaN holes, intrinsics of the depth grid), on the masks' device.

    ``intrinsics`` describe the image of size ``intrinsics.width`` x ``height`` when those are
    set (a CameraInfo's), else the masks' image.
    """
    m = _as_masks(masks)
    z = depth_to_metres(depth, m.device, depth_scale)
    hd, wd = z.shape
    intr = as_intrinsics(intrinsics)
    if intr.width is None or intr.height is None:
        intr = intr._replace(width=int(m.shape[2]), height=int(m.shape[1]))
    return _masks_on_grid(m, hd, wd), z, intr.scaled_to(hd, wd)


def _erode(masks: Tensor, radius: int) -> Tensor:
    """Masks shrunk by ``radius`` pixels (square structuring element; the image border does not erode).

    Shifted ANDs, one axis after the other: on CPU several times faster than a min-pool.
    """
    out = masks
    for axis in (1, 2):
        source, size = out, out.shape[axis]
        out = source.clone()
        for k in range(1, min(radius, size - 1) + 1):
            out.narrow(axis, k, size - k).logical_and_(source.narrow(axis, 0, size - k))
            out.narrow(axis, 0, size - k).logical_and_(source.narrow(axis, k, size - k))
    return out


def _segment_quantiles(
    segment: Tensor, values: Tensor, counts: Tensor, starts: Tensor, quantiles: Sequence[float]
) -> Tensor:
    """N x Q quantiles (linear interpolation, as torch.quantile) of each segment's first ``counts`` values.

    ``segment`` (sorted) gives each value's row; values to leave out must be +inf (they sort
    last within their segment and ``counts`` excludes them). Empty rows give NaN. One sort:
    the key is ``segment * 2^20 + value`` in float64 (values are metres, far below 2^19, and
    float64 keeps them to about 1e-8 m beside the segment offset).
    """
    n = counts.shape[0]
    if values.numel() == 0:
        return torch.full((n, len(quantiles)), float("nan"), device=counts.device)
    key = segment.to(torch.float64) * _SEGMENT_STRIDE + values.to(torch.float64).clamp(max=_SEGMENT_STRIDE / 2)
    ordered = values[torch.argsort(key)]
    q = torch.tensor(quantiles, dtype=torch.float32, device=values.device)
    pos = q[None] * (counts[:, None] - 1).clamp(min=0).float()
    lo, hi = pos.floor().long(), pos.ceil().long()
    last = values.numel() - 1
    a = ordered[(starts[:, None] + lo).clamp(0, last)]
    b = ordered[(starts[:, None] + hi).clamp(0, last)]
    out = a + (b - a) * (pos - lo.float())
    return torch.where(counts[:, None] > 0, out, torch.full_like(out, float("nan")))


def locate_objects(
    masks: Any,
    depth: Any,
    intrinsics: Any,
    depth_scale: float | None = None,
    *,
    erode: int = 2,
    min_samples: int = 20,
    percentiles: tuple[float, float] = (1.0, 99.0),
    outlier_mads: float = 3.0,
    min_band: float = 0.03,
    max_samples: int | None = 8192,
) -> ObjectLocations:
    """Robust 3-D position, extent and sample count of every mask, from a depth image registered to them.

    ``masks``: N x H x W bool (numpy or torch; the computation runs on their device).
    ``depth``: H x W depth aligned to the masks' image: integers (``16UC1``) times
    ``depth_scale`` metres per unit (default 0.001) or floats in metres (``32FC1``); 0 and NaN
    are holes. A depth image at a whole-number zoom of the masks (same aspect) is used with the
    masks resampled to it; anything else raises ``IntrinsicsError``.
    ``intrinsics``: (fx, fy, cx, cy), a 3 x 3 K, or an ``Intrinsics`` (from
    ``intrinsics_from_camera_info``) whose width/height name the image it describes (default: the
    masks'); rescaled to the depth grid when that differs.

    Steps per mask: the dominant depth is the median of the mask eroded by ``erode`` px (the
    whole mask if erosion leaves fewer than ``min_samples`` samples), so edge pixels cannot
    sway it; inliers are the mask's samples within ``max(min_band m, outlier_mads x 1.4826 x MAD)``
    of it (flying pixels and background the mask bleeds onto are out); position = per-axis
    inlier median; extent from the inliers' ``percentiles`` (in %). Masks with more than
    ``max_samples`` samples use about that many, spread over the mask, which bounds the cost of
    large objects (None: all). See ``ObjectLocations`` for the fields.
    """
    m, z, intr = prepare(masks, depth, intrinsics, depth_scale)
    n, h, w = m.shape
    device = m.device
    has_depth = ~torch.isnan(z)
    full = m & has_depth
    eroded = _erode(m, erode).reshape(n, h * w)

    segment, pixel = full.reshape(n, h * w).nonzero(as_tuple=True)  # row-major: sorted by object
    num_samples = torch.bincount(segment, minlength=n)
    in_eroded = eroded[segment, pixel]
    eroded_count = torch.zeros(n, dtype=torch.long, device=device).index_add_(0, segment, in_eroded.long())
    use_eroded = eroded_count >= min_samples
    counts = num_samples
    if max_samples is not None and segment.numel() > max_samples:
        # About 1 in k samples (k per object), picked by a hash of the pixel index: spread over
        # the mask without the aliasing a raster stride has when k divides the mask's width.
        step = (counts + max_samples - 1) // max_samples
        keep = (((pixel * 2654435761) & 0xFFFFFFFF) >> 12) % step[segment] == 0
        segment, pixel, in_eroded = segment[keep], pixel[keep], in_eroded[keep]
        counts = torch.bincount(segment, minlength=n)
    starts = counts.cumsum(0) - counts
    zs = z.reshape(-1)[pixel]
    # The dominant depth and its spread come from the eroded mask (no edge pixels) ...
    core = in_eroded | ~use_eroded[segment]
    core_count = torch.zeros(n, dtype=torch.long, device=device).index_add_(0, segment, core.long())
    inf = torch.tensor(float("inf"), device=device)
    z_median = _segment_quantiles(segment, torch.where(core, zs, inf), core_count, starts, [0.5])[:, 0]
    deviation = (zs - z_median[segment]).abs()
    mad = _segment_quantiles(segment, torch.where(core, deviation, inf), core_count, starts, [0.5])[:, 0]
    band = torch.clamp(outlier_mads * _MAD_TO_SIGMA * mad, min=min_band)
    # ... the inliers from the whole mask, so that the object's own border pixels count for its extent.
    inlier = deviation <= band[segment]
    num_inliers = torch.zeros(n, dtype=torch.long, device=device).index_add_(0, segment, inlier.long())

    us = (pixel % w).to(torch.float32)
    vs = torch.div(pixel, w, rounding_mode="floor").to(torch.float32)
    coords = ((us - intr.cx) * zs / intr.fx, (vs - intr.cy) * zs / intr.fy, zs)
    qs = [percentiles[0] / 100.0, 0.5, percentiles[1] / 100.0]
    stats = [_segment_quantiles(segment, torch.where(inlier, c, inf), num_inliers, starts, qs) for c in coords]
    lo = torch.stack([s[:, 0] for s in stats], dim=1)
    position = torch.stack([s[:, 1] for s in stats], dim=1)
    hi = torch.stack([s[:, 2] for s in stats], dim=1)
    footprint = 0.5 * position[:, 2]  # each sample stands for a pixel: half of one beyond its centre
    widen = torch.stack([footprint / intr.fx, footprint / intr.fy, torch.zeros_like(footprint)], dim=1)
    valid = num_inliers >= min_samples
    nan = torch.full_like(position, float("nan"))
    keep = valid[:, None]
    return ObjectLocations(
        torch.where(keep, position, nan),
        torch.where(keep, lo - widen, nan),
        torch.where(keep, hi + widen, nan),
        num_samples,
        num_inliers,
        valid,
    )
