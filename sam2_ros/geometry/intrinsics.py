"""Pinhole intrinsics: parsing (fx, fy, cx, cy), a 3 x 3 K or a CameraInfo, and rescaling to a depth grid.

Why a module of its own: every 3-D number the tracker gives is only as right as the pixel grid
its intrinsics describe. A depth image at another resolution than the one the intrinsics were
calibrated for is common (decimated depth, a colour stream at 1280x720 with depth at 640x360);
using the intrinsics unscaled would silently shift and scale every position. So the grid is
explicit, rescaling is exact (whole-number factors, equal in x and y) and anything else is
refused with a message that says what to fix.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from sam2_ros.errors import UsageError


class IntrinsicsError(UsageError):
    """Intrinsics that cannot be used, or a depth grid they cannot be mapped to."""


class Intrinsics(NamedTuple):
    """Pinhole intrinsics in pixels (ROS / OpenCV convention: pixel (0, 0)'s centre at 0, 0).

    ``width``/``height``: the image size they were calibrated for; None means "the masks' size".
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int | None = None
    height: int | None = None

    def scaled_to(self, height: int, width: int) -> Intrinsics:
        """These intrinsics on a ``height`` x ``width`` grid of the same view (whole-number zoom only).

        Pixel areas scale, so the principal point moves as ``(c + 0.5) * s - 0.5`` (how binning
        and area resizing map pixel centres). Refused when the aspect ratio differs or the factor
        is not a whole number (or one over one): such pairs are crops or different cameras.
        """
        if self.width is None or self.height is None:
            raise IntrinsicsError("intrinsics without an image size cannot be rescaled")
        if (self.height, self.width) == (height, width):
            return self
        sx, sy = Fraction(width, self.width), Fraction(height, self.height)
        if sx != sy:
            raise IntrinsicsError(
                f"intrinsics for {self.width}x{self.height} cannot describe a {width}x{height} image: the aspect "
                f"ratios differ (a crop or another camera?); give intrinsics for {width}x{height}"
            )
        if sx.numerator != 1 and sx.denominator != 1:
            raise IntrinsicsError(
                f"intrinsics for {self.width}x{self.height} do not scale to {width}x{height} by a whole factor "
                f"(x{float(sx):.4g}); give intrinsics for {width}x{height}"
            )
        s = float(sx)
        return Intrinsics(self.fx * s, self.fy * s, (self.cx + 0.5) * s - 0.5, (self.cy + 0.5) * s - 0.5, width, height)


def as_intrinsics(value: Any) -> Intrinsics:
    """``Intrinsics`` from an ``Intrinsics``, (fx, fy, cx, cy) or a 3 x 3 K (numpy, torch or nested lists)."""
    if isinstance(value, Intrinsics):
        intr = value
    else:
        try:
            arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise IntrinsicsError(f"intrinsics must be (fx, fy, cx, cy) or a 3x3 K, got {value!r}") from exc
        if arr.shape == (3, 3):
            if arr[0, 1] != 0 or arr[1, 0] != 0 or arr[2].tolist() != [0.0, 0.0, 1.0]:
                raise IntrinsicsError(f"K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew), got {arr.tolist()}")
            intr = Intrinsics(arr[0, 0], arr[1, 1], arr[0, 2], arr[1, 2])
        elif arr.shape == (4,):
            intr = Intrinsics(*arr.tolist())
        else:
            raise IntrinsicsError(f"intrinsics must be (fx, fy, cx, cy) or a 3x3 K, got shape {arr.shape}")
    values = [float(v) for v in intr[:4]]
    if not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[1] <= 0:
        raise IntrinsicsError(
            f"intrinsics need finite values and fx, fy > 0, got fx={values[0]}, fy={values[1]}, "
            f"cx={values[2]}, cy={values[3]}"
        )
    return Intrinsics(*values, intr.width, intr.height)


def parse_intrinsics(text: str) -> Intrinsics:
    """``"fx,fy,cx,cy"`` (the command line's ``--intrinsics``)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise IntrinsicsError(f"intrinsics must be fx,fy,cx,cy numbers, got {text!r}") from None
    if len(values) != 4:
        raise IntrinsicsError(f"intrinsics must be 4 numbers fx,fy,cx,cy, got {len(values)} in {text!r}")
    return as_intrinsics(values)


def intrinsics_from_camera_info(msg: Any) -> Intrinsics:
    """The rectified-image intrinsics of a sensor_msgs/CameraInfo (its ``k``, ``width``, ``height``).

    Binning and regions of interest change which pixels ``k`` describes; rather than guess,
    they are refused (aligned depth drivers publish neither).
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9 or not k.any():
        raise IntrinsicsError("CameraInfo has no intrinsics (k is all zero: an uncalibrated camera)")
    if max(int(msg.binning_x), 1) != 1 or max(int(msg.binning_y), 1) != 1:
        raise IntrinsicsError(f"CameraInfo with binning {msg.binning_x}x{msg.binning_y} is not supported")
    roi = msg.roi
    if (
        roi.width
        and roi.height
        and (roi.x_offset or roi.y_offset or roi.width != msg.width or roi.height != msg.height)
    ):
        raise IntrinsicsError(
            f"CameraInfo with a region of interest ({roi.width}x{roi.height} at "
            f"{roi.x_offset},{roi.y_offset}) is not supported"
        )
    intr = as_intrinsics(k.reshape(3, 3))
    if msg.width <= 0 or msg.height <= 0:
        return intr
    return intr._replace(width=int(msg.width), height=int(msg.height))
