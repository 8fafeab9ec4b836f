"""Before/after of issue 11's per-object changes, with Meta's predictor, in lockstep in one process.

Three trackers on the same weights and frames, one click per object on frame 0: Meta's
``SAM2VideoPredictor``; ours "before" (the real-arithmetic RoPE that exports use, and
full-resolution logits, a B x H x W boolean mask and boxes from it on every frame, as the tracker
did before); ours "after" (eager complex-multiply RoPE, full-resolution logits and boxes by
row/column maxima). Frame f of each runs before frame f + 1 of any, the order rotating per frame,
so a shared machine's load hits all three alike. Prints median ms per frame (frames 7.., the
bank full) and the ratios to Meta's; writes ``bench_before_after.json``.

    python benchmarks/bench_before_after.py --counts 16,4,1 --frames 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, grid_points, load_frames, make_models, video_folder

import sam2_ros.model.rope as rope
from sam2_ros.tracking import Sam2Tracker, TorchBackend
from sam2_ros.tracking.imageops import boxes_from_masks


def step(side: str, gen, trackers: dict, frame: np.ndarray) -> None:
    if side == "official":
        next(gen)
        return
    eager = rope._eager
    if side == "before":
        rope._eager = lambda: False  # the formulation every frame used before
    try:
        result = trackers[side].track(frame)
        if side == "before":
            _, nonempty = boxes_from_masks(result.logits > 0)
            _ = (result.scores > 0) & nonempty
        else:
            _ = result.logits, result.boxes, result.visible
    finally:
        rope._eager = eager


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_t")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--counts", default="16,4,1")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--warmup", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frames-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    theirs, ours = make_models(args.model, args.image_size)
    video = video_folder(args.frames, args.frames_dir)
    frames = load_frames(video, args.frames)
    h, w = frames[0].shape[:2]
    state = theirs.init_state(str(video))
    report = {"config": vars(args) | {"out": str(args.out), "frames_dir": str(args.frames_dir)}, "rows": []}
    for n in (int(c) for c in args.counts.split(",")):
        points = grid_points(n, h, w)
        theirs.reset_state(state)
        with torch.inference_mode():
            for i, pt in enumerate(points):
                theirs.add_new_points_or_box(state, 0, i + 1, points=[pt], labels=[1])
        gen = theirs.propagate_in_video(state)
        next(gen)
        trackers = {k: Sam2Tracker(TorchBackend(ours), max_objects=n, fill_hole_area=0) for k in ("before", "after")}
        for t in trackers.values():
            t.track(frames[0])
            for i, pt in enumerate(points):
                t.add_points(i + 1, [pt], [1])
        ms = {"official": [], "before": [], "after": []}
        for f in range(1, args.frames):
            order = list(ms)[f % 3 :] + list(ms)[: f % 3]
            for side in order:
                t0 = time.perf_counter()
                step(side, gen, trackers, frames[f])
                if f >= args.warmup:
                    ms[side].append((time.perf_counter() - t0) * 1e3)
        gen.close()
        row = {"objects": n} | {f"{k}_ms": float(np.median(v)) for k, v in ms.items()} | {"frames_ms": ms}
        row["ratio_before"] = row["before_ms"] / row["official_ms"]
        row["ratio_after"] = row["after_ms"] / row["official_ms"]
        report["rows"].append(row)
        print(
            f"{n:>3} objects: official {row['official_ms']:.1f} ms, before {row['before_ms']:.1f} ms "
            f"({row['ratio_before']:.3f}), after {row['after_ms']:.1f} ms ({row['ratio_after']:.3f})",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_before_after.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
