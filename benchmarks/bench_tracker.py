"""Benchmark: our streaming tracker vs Meta's SAM2VideoPredictor, same weights, one run.

Our tracker runs on each backend named in ``--backends`` (``torch``; ``onnxruntime`` exports
the same weights to ONNX first). All track the same objects (a click and a box on the first frame) through the same
frames at the same resolution on the same device. Reported, as ratios ours/official:

* per-frame latency p50 / p99 and FPS (official: time between frames yielded by
  ``propagate_in_video``; ours: ``Sam2Tracker.track``), after warm-up;
* tracking-state memory after 100 and after N frames: every tensor the predictor keeps
  for tracking (Meta: ``inference_state`` without its preloaded input frames, which are
  reported separately; ours: the memory bank plus per-object state).

Weights are random (no pretrained weights are reachable here), which does not change the
amount of computation. Prints a table and writes ``bench_tracker.json`` and a PNG plot.

    python benchmarks/bench_tracker.py --frames 2000 --image-size 256 --device cpu
    python benchmarks/bench_tracker.py --device cuda --dtype bfloat16 --image-size 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, autocast, load_frames, make_models, pyplot, sync, tensor_bytes, video_folder  # noqa: E402

from sam2_ros.tracking import Sam2Tracker, TorchBackend  # noqa: E402

CLICK = [[300.0, 220.0]]
BOX = [560.0, 60.0, 820.0, 420.0]


def ours_state_bytes(tracker: Sam2Tracker) -> int:
    objs = [o.__dict__ for o in tracker._objects.values()]
    outs = [o.out.__dict__ for o in tracker._objects.values() if o.out is not None]
    feats = tracker._feats.__dict__ if tracker._feats is not None else {}
    return tensor_bytes([tracker.bank.tensors(), objs, outs, feats])


def run_official(theirs, video: Path, n: int, device: torch.device, marks: tuple[int, ...]):
    state = theirs.init_state(str(video))
    frames_bytes = tensor_bytes(state["images"])
    skip = {state["images"].untyped_storage().data_ptr()}
    times, memory = [], {}
    with torch.inference_mode():
        theirs.add_new_points_or_box(state, 0, 1, points=CLICK, labels=[1])
        theirs.add_new_points_or_box(state, 0, 2, box=BOX)
        sync(device)
        t = time.perf_counter()
        for f, _, _ in theirs.propagate_in_video(state):
            sync(device)
            now = time.perf_counter()
            times.append(now - t)
            t = now
            if f + 1 in marks:
                memory[f + 1] = tensor_bytes(state, skip)
                t = time.perf_counter()
    return np.array(times[1:]) * 1e3, memory, frames_bytes, state


def make_backends(names: list[str], ours, device: torch.device, dtype: torch.dtype) -> dict:
    """Backends over the same weights: torch directly, onnxruntime through a fresh export."""
    backends = {}
    for name in names:
        if name == "torch":
            backends[name] = TorchBackend(ours, device=device, dtype=dtype)
        elif name == "onnxruntime":
            from export.onnx_export import export_onnx
            from sam2_ros.backends.onnxruntime import OnnxRuntimeBackend

            folder = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
            export_onnx(ours.cpu(), folder)
            ours.to(device)
            backends[name] = OnnxRuntimeBackend(folder, str(device))
        else:
            raise SystemExit(f"unknown backend {name!r} (torch, onnxruntime)")
    return backends


def run_ours(backend, video: Path, n: int, device: torch.device, marks: tuple[int, ...]):
    bank = {"max_cond_frames": backend.max_cond_frames} if hasattr(backend, "max_cond_frames") else {}
    tracker = Sam2Tracker(backend, max_objects=4, fill_hole_area=0, **bank)
    frames = load_frames(video, min(n, 200))
    times, memory = [], {}
    for i in range(n):
        frame = frames[i % len(frames)]
        sync(device)
        t = time.perf_counter()
        result = tracker.track(frame)
        if i == 0:
            tracker.add_points(1, CLICK, [1])
            result = tracker.add_box(2, BOX)
        _ = result.logits, result.boxes  # full-resolution outputs, as Meta's predictor returns them
        sync(device)
        times.append(time.perf_counter() - t)
        if i + 1 in marks:
            memory[i + 1] = ours_state_bytes(tracker)
    return np.array(times[1:]) * 1e3, memory


def summarize(ms: np.ndarray, warmup: int) -> dict:
    ms = ms[warmup:]
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "fps": float(1e3 / ms.mean()),
        "frames": int(len(ms)),
    }


def plot(latency: dict[str, np.ndarray], mem: dict[str, dict[int, int]], out: Path, title: str) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, ms in latency.items():
        a.plot(ms, label=name, lw=0.8)
    a.set_xlabel("frame"), a.set_ylabel("latency (ms)"), a.set_title("per-frame latency"), a.legend()
    marks = sorted(next(iter(mem.values())))
    x = np.arange(len(marks))
    width = 0.8 / len(mem)
    for i, (name, values) in enumerate(mem.items()):
        b.bar(x + (i - (len(mem) - 1) / 2) * width, [values[m] / 2**20 for m in marks], width, label=name)
    b.set_xticks(x, [f"after {m} frames" for m in marks]), b.set_ylabel("tracking state (MiB)")
    b.set_title("memory"), b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_t")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--frames", type=int, default=2000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--backends", default="torch", help="comma-separated: torch, onnxruntime (default torch)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    marks = tuple(m for m in (100, args.frames) if m <= args.frames)
    theirs, ours = make_models(args.model, args.image_size, seed=2)
    theirs.to(device)
    video = video_folder(args.frames)
    with autocast(device, dtype):  # Meta's recommended mixed-precision usage
        theirs_ms, theirs_mem, frames_bytes, _ = run_official(theirs, video, args.frames, device, marks)
    t = summarize(theirs_ms, args.warmup)
    results, latency, memory = {}, {"official SAM2VideoPredictor": theirs_ms}, {"official": theirs_mem}
    for name, backend in make_backends(args.backends.split(","), ours, device, dtype).items():
        ms, mem = run_ours(backend, video, args.frames, device, marks)
        results[name] = summarize(ms, args.warmup)
        latency[f"sam2_ros ({name})"], memory[f"sam2_ros ({name})"] = ms, mem
    report = {
        "config": vars(args)
        | {
            "out": str(args.out),
            "torch": torch.__version__,
            "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        },
        "official": t,
        "ours": results,
        "ratios_ours_over_official": {
            name: {"p50": o["p50_ms"] / t["p50_ms"], "p99": o["p99_ms"] / t["p99_ms"], "fps": o["fps"] / t["fps"]}
            for name, o in results.items()
        },
        "memory_bytes": memory | {"official_preloaded_input_frames": frames_bytes},
        "timing_note": "ours: per track() call incl. JPEG-decoded frame resize/normalise on the device; "
        "official: time between propagate_in_video yields, its frames preloaded and "
        "normalised by init_state beforehand (not timed)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_tracker.json").write_text(json.dumps(report, indent=2))
    plot(
        latency,
        memory,
        args.out / "bench_tracker.png",
        f"{args.model} @ {args.image_size}px, {args.device} {args.dtype}, 2 objects, {args.frames} frames",
    )
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}{'fps':>8}{'  ratio p50 / p99 / fps vs official':>36}")
    print(f"{'official':28}{t['p50_ms']:>10.1f}{t['p99_ms']:>10.1f}{t['fps']:>8.2f}")
    for name, o in results.items():
        r = report["ratios_ours_over_official"][name]
        print(
            f"{'sam2_ros ' + name:28}{o['p50_ms']:>10.1f}{o['p99_ms']:>10.1f}{o['fps']:>8.2f}"
            f"{r['p50']:>16.3f}{r['p99']:>8.3f}{r['fps']:>8.3f}"
        )
    for m in marks:
        row = "   ".join(f"{name} {mem[m] / 2**20:.1f} MiB" for name, mem in memory.items())
        print(f"tracking state after {m:>5} frames: {row}")
    print(f"(official also preloads all input frames: {frames_bytes / 2**20:.1f} MiB)")
    print(report["timing_note"])
    print(f"wrote {args.out / 'bench_tracker.json'} and {args.out / 'bench_tracker.png'}")


if __name__ == "__main__":
    main()
