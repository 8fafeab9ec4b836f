"""Depth frames for ``sam2-ros track --depth DIR``: a folder of depth images in natural order, one per colour frame.

Why a folder, not a video: common video codecs are 8-bit and lossy, which destroys depth. Depth
recordings are exported as 16-bit PNGs in millimetres (RealSense, Azure Kinect, TUM, ICL-NUIM)
or 32-bit float TIFFs in metres; both are read losslessly here.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sam2_ros.errors import InputError
from sam2_ros.io.sources import natural_key

DEPTH_SUFFIXES = (".png", ".tif", ".tiff")


class DepthFolder:
    """The depth images of ``folder``; image i belongs to colour frame i."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            what = (
                "does not exist"
                if not folder.exists()
                else "is not a folder (depth videos are not supported: 8-bit lossy codecs cannot carry depth)"
            )
            raise InputError(f"--depth {folder} {what}; give a folder of 16-bit PNGs (mm) or float32 TIFFs (m)")
        self.paths = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in DEPTH_SUFFIXES and p.is_file()),
            key=lambda p: natural_key(p.name),
        )
        if not self.paths:
            raise InputError(f"--depth {folder} holds no png/tif depth images")

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        """Depth image ``index`` as stored: uint16 (units of --depth-scale) or float32 (metres)."""
        if index >= len(self.paths):
            raise InputError(f"--depth has {len(self.paths)} images but the input has more frames")
        path = self.paths[index]
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise InputError(f"cannot read depth image {path}")
        if depth.ndim != 2 or depth.dtype not in (np.uint16, np.float32):
            raise InputError(
                f"{path}: depth images must be single-channel 16-bit (mm) or float32 (m), got "
                f"{depth.dtype} with shape {depth.shape} (an 8-bit or colour image is not depth)"
            )
        return depth
