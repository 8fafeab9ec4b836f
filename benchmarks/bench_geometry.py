"""Benchmark: per-frame cost of the 3-D step (``locate_objects``) for 1 and 16 objects at 640x480.

Real depth (the livingroom RGB-D clip, millimetres) and masks of realistic sizes (rectangles of
2-6 % of the image, as tracked objects are). Peer, measured in the same run: the same
statistics (median depth, MAD band, per-axis median and percentiles) computed object by object
with numpy, which is what a straightforward implementation does. Ours runs batched in torch on
``--device`` with the masks already there (the tracker's), and includes the one host copy of the
results. Prints milliseconds (median of ``--repeats``) and the ratio ours / peer.

    python benchmarks/bench_geometry.py                # CPU
    python benchmarks/bench_geometry.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_ros.geometry import locate_objects  # noqa: E402

DEPTH = ROOT.parent / "shared" / "data" / "rgbd" / "livingroom" / "depth" / "00000.png"
INTRINSICS = (525.0, 525.0, 319.5, 239.5)


def masks_for(n: int, rng: np.random.Generator) -> np.ndarray:
    masks = np.zeros((n, 480, 640), bool)
    for i in range(n):
        area = rng.uniform(0.02, 0.06) * 480 * 640
        w = int(rng.uniform(0.6, 1.6) * np.sqrt(area))
        h = int(area / w)
        x, y = rng.integers(0, 640 - w), rng.integers(0, 480 - h)
        masks[i, y : y + h, x : x + w] = True
    return masks


def numpy_per_object(masks: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
    """The peer: one object at a time, numpy on the host."""
    fx, fy, cx, cy = INTRINSICS
    z_all = depth_mm.astype(np.float32) * 0.001
    v_all, u_all = np.mgrid[0:480, 0:640]
    out = np.full((len(masks), 3, 3), np.nan)
    for i, mask in enumerate(masks):
        sel = mask & (depth_mm > 0)
        z, u, v = z_all[sel], u_all[sel], v_all[sel]
        if len(z) < 20:
            continue
        med = np.median(z)
        dev = np.abs(z - med)
        keep = dev <= max(0.03, 3 * 1.4826 * np.median(dev))
        z, u, v = z[keep], u[keep], v[keep]
        for k, c in enumerate(((u - cx) * z / fx, (v - cy) * z / fy, z)):
            out[i, k] = np.percentile(c, [1, 50, 99])
    return out


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    depth = cv2.imread(str(DEPTH), cv2.IMREAD_UNCHANGED)
    depth_dev = torch.from_numpy(depth.astype(np.int32)).to(args.device)
    rng = np.random.default_rng(0)
    print(
        f"3-D step at 640x480 on {args.device} (torch {torch.__version__}, {torch.get_num_threads()} threads); "
        f"median of {args.repeats}"
    )
    print(f"{'objects':>8} {'ours ms':>9} {'numpy loop ms':>14} {'ours/peer':>10}")
    for n in args.objects:
        masks = masks_for(n, rng)
        masks_dev = torch.from_numpy(masks).to(args.device)

        def ours(masks_dev: torch.Tensor = masks_dev):
            loc = locate_objects(masks_dev, depth_dev, INTRINSICS, depth_scale=0.001)
            return loc.cpu()  # the results on the host, as the node publishes them

        ours_ms = timed(ours, args.repeats)
        peer_ms = timed(lambda masks=masks: numpy_per_object(masks, depth), args.repeats)
        print(f"{n:>8} {ours_ms:>9.1f} {peer_ms:>14.1f} {ours_ms / peer_ms:>10.2f}")


if __name__ == "__main__":
    main()
