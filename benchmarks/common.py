"""Setup shared by the benchmarks: both trackers on one set of weights, the same frames.

Meta's ``SAM2VideoPredictor`` reads a folder of JPEGs named ``00000.jpg``..; our tracker
takes decoded frames. Both see the same pictures: the bedroom demo clip when the data
folder exists, else synthetic moving shapes (:func:`synthetic_frames`), written as JPEGs for
Meta's loader and read back, so both sides decode the same bytes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BEDROOM = ROOT.parent / "shared" / "data" / "videos" / "bedroom"


def tensor_bytes(obj, skip: set[int] = frozenset(), seen: set[int] | None = None) -> int:
    """Bytes of all distinct tensor storages reachable from nested dicts/lists/tuples."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = obj.untyped_storage().data_ptr()
        if key in seen or key in skip:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, skip, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, skip, seen) for v in obj)
    return 0


def sync(device: torch.device) -> None:
    """Wait for the device, so wall-clock deltas measure its work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_models(model: str, image_size: int, seed: int = 2):
    """(Meta's SAM2VideoPredictor, our Sam2Model) with identical random weights, on the CPU."""
    from tests.official_model import make_pair

    return make_pair(model, image_size, seed=seed)


def make_edgetam(image_size: int, seed: int = 2):
    """Our EdgeTAM with seeded random weights (the reference cannot batch objects, so no Meta pair).

    Random weights do not change the amount of computation; the object-score head is biased so
    objects are present, as for :func:`make_models`.
    """
    from sam2_ros.model import build_sam2
    from tests.parity import randomize_

    torch.manual_seed(seed)
    model = build_sam2("edgetam", image_size=image_size, fill_hole_area=0)
    randomize_(model, seed=seed, std=0.05)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):  # BatchNorm variances stay positive
                buf.copy_(buf.abs() + 0.5)
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 8.0
    return model.eval()


def synthetic_frames(n: int, height: int = 540, width: int = 960, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames of coloured discs and squares drifting over a gradient (numpy only, no data)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), ((xx + yy) % 64) * 4], axis=-1
    ).astype(np.uint8)
    shapes = [
        (
            rng.uniform(0.1, 0.9) * width,
            rng.uniform(0.1, 0.9) * height,
            rng.uniform(-6, 6),
            rng.uniform(-4, 4),
            max(2.0, rng.uniform(0.04, 0.1) * min(height, width)),
            rng.integers(0, 256, 3).astype(np.uint8),
        )
        for _ in range(12)
    ]
    frames = []
    for t in range(n):
        img = base.copy()
        for i, (x, y, vx, vy, r, colour) in enumerate(shapes):
            cx, cy = (x + vx * t) % width, (y + vy * t) % height
            y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
            x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
            gx, gy = xx[y0:y1, x0:x1], yy[y0:y1, x0:x1]
            inside = ((gx - cx) ** 2 + (gy - cy) ** 2 <= r * r) if i % 2 else np.ones(gx.shape, bool)
            img[y0:y1, x0:x1][inside] = colour
        frames.append(img)
    return frames


def video_folder(
    n: int, source: Path | None = None, synthetic_hw: tuple[int, int] = (540, 960), use_bedroom: bool = True
) -> Path:
    """A folder of ``n`` frames ``00000.jpg``.. for Meta's loader.

    ``source``: a folder of JPEGs (looped; linked, not copied); None: the bedroom clip if
    present and ``use_bedroom``, else synthetic shapes of size ``synthetic_hw`` written as JPEGs.
    """
    from PIL import Image  # Meta's loader needs Pillow anyway

    folder = Path(tempfile.mkdtemp(prefix="bench_frames_"))
    source = source if source is not None else (BEDROOM if use_bedroom and BEDROOM.is_dir() else None)
    if source is not None:
        src = sorted(Path(source).glob("*.jpg"))
        if not src:
            raise SystemExit(f"no .jpg frames in {source}")
        for i in range(n):
            (folder / f"{i:05d}.jpg").symlink_to(src[i % len(src)].resolve())
        return folder
    for i, frame in enumerate(synthetic_frames(n, *synthetic_hw)):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def load_frames(folder: Path, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of a folder made by :func:`video_folder`, decoded as Meta's loader does (PIL)."""
    from PIL import Image

    src = sorted(Path(folder).glob("*.jpg"))[:n]
    return [np.asarray(Image.open(p).convert("RGB")) for p in src]


def grid_points(n: int, height: int, width: int) -> list[list[float]]:
    """``n`` click positions (x, y) at the centres of a near-square grid over the frame."""
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    return [[(i % cols + 0.5) * width / cols, (i // cols + 0.5) * height / rows] for i in range(n)]


def autocast(device: torch.device, dtype: torch.dtype):
    """Meta's recommended mixed-precision usage (a no-op context for float32)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
