"""Everything a GPU session should measure, in one call: parity on the device, then speed.

    python benchmarks/gpu_run.py OUT_DIR                      # CUDA, 1024 px, ~7 minutes on an H100
    python benchmarks/gpu_run.py OUT_DIR --device cpu --tiny  # the CI configuration (64 px, 2 objects)

Parts, each in its own subprocess with a time budget (a part that overruns is stopped and
recorded as ``timeout``, keeping what it wrote so far; one that fails is recorded with its
error; the next part still runs):

* ``parity``: our tracker in float32 on the device vs on the CPU (relative L2 of the logits,
  mask IoU), ours vs Meta's ``SAM2VideoPredictor`` on the device (float32), and bfloat16 /
  float16 autocast vs float32 on the device (mask IoU). TF32 is off for these checks.
* ``bench_fp32``, ``bench_bf16``: ``bench_objects.measure`` (ours vs Meta's predictor, 1 / 4 /
  16 objects, per-stage times for ours) in eager mode, with ours on EdgeTAM timed in the same
  lockstep (``edgetam_*`` keys; ``--no-edgetam`` leaves it out). EdgeTAM needs a multiple of
  256 px: it runs at the image size rounded up to one (256 px in ``--tiny``).
* EdgeTAM in ``parity``: ours on EdgeTAM in float32 on the device vs on the CPU (the strict check
  against Meta's EdgeTAM is tests/test_edgetam_tracker_parity.py; Meta's cannot batch objects).
* ``bench_bf16_compiled``: the same with our image encoder under ``torch.compile`` (mode
  ``--compile``, default ``reduce-overhead``: CUDA graphs); Meta's predictor stays eager.

Frames: ``--frames-dir`` (a folder of JPEGs), else synthetic moving shapes (no data folder
needed). Weights are random (``tests/official_model.make_pair``), identical for both. Needs
torch, sam2==1.1.0 (with hydra-core, iopath, tqdm, Pillow), numpy and pytest (the model
builder's helpers); no OpenCV, no network. Writes ``OUT_DIR/gpu_run.json`` (all parts, rewritten
after each) and ``OUT_DIR/parts/<part>.json``; exit status 0 when every part ran and every
parity check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, grid_points, load_frames, make_edgetam, make_models, video_folder  # noqa: E402

#: part -> its share (seconds) of the overall budget, scaled to --budget-s; unused time carries over.
PARTS = {
    "parity": 100,
    "bench_fp32": 100,
    "bench_bf16": 80,
    "bench_bf16_compiled": 150,
}
TINY_NO_COMPILE = "--tiny: torch.compile build time exceeds the CI budget (tests/test_tracker.py covers compile)"
#: Thresholds of the parity checks.
REL_L2_FP32 = 1e-3  # ours in float32: on the device vs on the CPU
#: Ours vs Meta's on the device. The strict check is tests/test_tracker_parity.py (1e-4 at 256 px, CPU);
#: at the tiny 64 px size the two differ by ~1e-3 on tracked frames already on the CPU.
REL_L2_OFFICIAL = 5e-3
IOU_FP32 = 0.99
IOU_REDUCED = 0.9  # bfloat16 / float16 autocast vs float32 (random weights, as tests/test_tracker.py)


def config(args: argparse.Namespace) -> dict:
    """Sizes of the run: full on a GPU, tiny for the CPU check in CI."""
    if args.tiny:
        return {
            "image_size": 64,
            "parity_frames": 3,
            "parity_objects": 2,
            "bench_frames": 4,
            "warmup": 2,
            "counts": [1, 2],
            "frame_hw": (96, 128),
            "edgetam_size": None if args.no_edgetam else 256,
        }
    return {
        "image_size": args.image_size,
        "parity_frames": 6,
        "parity_objects": 3,
        "bench_frames": 20,
        "warmup": 7,
        "counts": [int(c) for c in args.counts.split(",")],
        "frame_hw": (540, 960),
        "edgetam_size": None if args.no_edgetam else -(-args.image_size // 256) * 256,
    }


def write_json(path: Path, data: dict) -> None:
    """Atomically (temporary file + rename), so a stopped part leaves its last complete write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def environment(device: torch.device) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
    }
    try:
        from importlib.metadata import version

        import sam2  # noqa: F401

        env["sam2"] = version("sam2")
    except Exception as exc:  # noqa: BLE001 - recorded, the parts will fail with the details
        env["sam2"] = f"unavailable: {exc}"
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env |= {
            "gpu": p.name,
            "capability": f"{p.major}.{p.minor}",
            "gpu_memory_gib": round(p.total_memory / 2**30, 1),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return env


# ------------------------------------------------------------------------------------ parts
def frames_for(args: argparse.Namespace, cfg: dict, n: int) -> tuple[Path, list[np.ndarray]]:
    """``n`` frames as a JPEG folder (for Meta's loader) and decoded: ``--frames-dir`` or synthetic."""
    video = video_folder(n, args.frames_dir, synthetic_hw=cfg["frame_hw"], use_bedroom=False)
    return video, load_frames(video, n)


def track_ours(
    model, device: torch.device, dtype: torch.dtype, frames: list[np.ndarray], points: list[list[float]]
) -> list[torch.Tensor]:
    """Full-resolution logits (on the CPU) per frame; one click per object on frame 0."""
    from sam2_ros.tracking import Sam2Tracker, TorchBackend

    tracker = Sam2Tracker(TorchBackend(model, device=device, dtype=dtype), max_objects=len(points), fill_hole_area=0)
    out = []
    for f, frame in enumerate(frames):
        result = tracker.track(frame)
        if f == 0:
            for i, p in enumerate(points):
                result = tracker.add_points(i + 1, [p], [1])
        out.append(result.logits.float().cpu())
    return out


def track_official(theirs, video: Path, points: list[list[float]]) -> tuple[list[torch.Tensor], dict]:
    """Meta's predictor, same clicks, logits at video resolution per frame (on the CPU), and its state."""
    state = theirs.init_state(str(video))
    out = []
    with torch.inference_mode():
        for i, p in enumerate(points):
            theirs.add_new_points_or_box(state, 0, i + 1, points=[p], labels=[1])
        for _, _, masks in theirs.propagate_in_video(state):
            out.append(masks[:, 0].float().cpu())
    return out, state


def track_ours_on_images(
    model, device: torch.device, images: torch.Tensor, frame_hw: tuple[int, int], points: list[list[float]]
) -> list[torch.Tensor]:
    """``track_ours`` on already normalised images (Meta's preloaded ones: identical inputs)."""
    from sam2_ros.tracking import Sam2Tracker, TorchBackend

    tracker = Sam2Tracker(TorchBackend(model, device=device), max_objects=len(points), fill_hole_area=0)
    out = []
    for f in range(images.shape[0]):
        result = tracker.track_image(images[f : f + 1].to(device, torch.float32), frame_hw)
        if f == 0:
            for i, p in enumerate(points):
                result = tracker.add_points(i + 1, [p], [1])
        out.append(result.logits.float().cpu())
    return out


def compare(a: list[torch.Tensor], b: list[torch.Tensor]) -> dict:
    """Worst relative L2 of logits and worst / mean mask IoU over frames and objects."""
    rel, ious = [], []
    for x, y in zip(a, b):
        rel.append(float((x - y).norm() / y.norm().clamp_min(1e-12)))
        for mx, my in zip(x > 0, y > 0):
            union = (mx | my).sum().item()
            ious.append(1.0 if union == 0 else (mx & my).sum().item() / union)
    return {"max_rel_l2": max(rel), "min_iou": min(ious), "mean_iou": float(np.mean(ious)), "frames": len(a)}


def part_parity(args: argparse.Namespace, cfg: dict, device: torch.device, save) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    theirs, ours = make_models(args.model, cfg["image_size"])
    video, frames = frames_for(args, cfg, cfg["parity_frames"])
    points = grid_points(cfg["parity_objects"], *frames[0].shape[:2])
    res: dict = {"objects": len(points), "frames": len(frames), "tf32": False, "checks": {}}
    checks = res["checks"]
    cpu = track_ours(copy.deepcopy(ours), torch.device("cpu"), torch.float32, frames, points)
    dev32 = track_ours(copy.deepcopy(ours), device, torch.float32, frames, points)
    checks["ours_fp32_device_vs_cpu"] = compare(dev32, cpu) | {
        "pass_if": f"max_rel_l2 <= {REL_L2_FP32} and min_iou >= {IOU_FP32}"
    }
    save(res)
    theirs.to(device)
    official, state = track_official(theirs, video, points)
    same_input = track_ours_on_images(copy.deepcopy(ours), device, state["images"], frames[0].shape[:2], points)
    checks["ours_vs_official_fp32_device"] = compare(same_input, official) | {
        "pass_if": f"max_rel_l2 <= {REL_L2_OFFICIAL} and min_iou >= {IOU_FP32}"
    }
    save(res)
    for name in ("bfloat16", "float16"):
        dtype = getattr(torch, name)
        if device.type == "cpu" and dtype == torch.float16:
            checks[f"ours_{name}_vs_fp32"] = {"skipped": "float16 autocast is not supported on the CPU"}
            continue
        low = track_ours(copy.deepcopy(ours), device, dtype, frames, points)
        checks[f"ours_{name}_vs_fp32"] = compare(low, dev32) | {"pass_if": f"min_iou >= {IOU_REDUCED}"}
        save(res)
    if cfg["edgetam_size"] and not args.tiny:  # --tiny: EdgeTAM's 256 px minimum outgrows the CI budget here
        edgetam = make_edgetam(cfg["edgetam_size"])
        et_cpu = track_ours(copy.deepcopy(edgetam), torch.device("cpu"), torch.float32, frames, points)
        et_dev = track_ours(copy.deepcopy(edgetam), device, torch.float32, frames, points)
        checks["ours_edgetam_fp32_device_vs_cpu"] = compare(et_dev, et_cpu) | {
            "pass_if": f"max_rel_l2 <= {REL_L2_FP32} and min_iou >= {IOU_FP32}",
            "image_size": cfg["edgetam_size"],
        }
        save(res)
    limits = {
        "ours_fp32_device_vs_cpu": (REL_L2_FP32, IOU_FP32),
        "ours_edgetam_fp32_device_vs_cpu": (REL_L2_FP32, IOU_FP32),
        "ours_vs_official_fp32_device": (REL_L2_OFFICIAL, IOU_FP32),
    }
    for name, c in checks.items():
        if "skipped" in c:
            continue
        rel_l2, iou = limits.get(name, (float("inf"), IOU_REDUCED))
        c["passed"] = bool(c["max_rel_l2"] <= rel_l2 and c["min_iou"] >= iou)
    res["passed"] = all(c.get("passed", True) for c in checks.values())
    return res


def part_bench(
    args: argparse.Namespace, cfg: dict, device: torch.device, save, dtype: torch.dtype, compile_mode: str | None
) -> dict:
    from bench_objects import measure

    from sam2_ros.tracking import TorchBackend

    if dtype == torch.float16 and device.type == "cpu":
        return {"skipped": "float16 is not supported on the CPU"}
    theirs, ours = make_models(args.model, cfg["image_size"])
    theirs.to(device)
    video, frames = frames_for(args, cfg, cfg["bench_frames"])
    backend = TorchBackend(ours, device=device, dtype=dtype, compile=compile_mode)
    extra = {}
    if cfg["edgetam_size"]:
        extra["edgetam"] = TorchBackend(
            make_edgetam(cfg["edgetam_size"]), device=device, dtype=dtype, compile=compile_mode
        )
    res = {
        "dtype": str(dtype).replace("torch.", ""),
        "compile": compile_mode,
        "image_size": cfg["image_size"],
        "frame_hw": list(frames[0].shape[:2]),
        "frames": len(frames),
        "warmup": cfg["warmup"],
        "official_compiled": False,
        "edgetam_image_size": cfg["edgetam_size"],
        "rows": [],
    }

    def on_row(rows: list[dict]) -> None:
        res["rows"] = rows
        save(res)

    t = time.perf_counter()
    res |= measure(
        theirs, backend, video, frames, cfg["counts"], device, dtype, cfg["warmup"], 1, on_row=on_row, extra=extra
    )
    res["wall_s"] = time.perf_counter() - t
    return res


def run_part(name: str, args: argparse.Namespace) -> dict:
    """Run one part in this process; its JSON goes to OUT_DIR/parts/<name>.json as it grows."""
    cfg = config(args)
    device = torch.device(args.device)
    path = args.out_dir / "parts" / f"{name}.json"

    def save(res: dict) -> None:
        write_json(path, {"status": "running", "result": res})

    t = time.perf_counter()
    if name == "parity":
        res = part_parity(args, cfg, device, save)
    elif name == "bench_fp32":
        res = part_bench(args, cfg, device, save, torch.float32, None)
    elif name == "bench_bf16":
        res = part_bench(args, cfg, device, save, torch.bfloat16, None)
    elif name == "bench_bf16_compiled":
        if args.tiny:
            res = {"skipped": TINY_NO_COMPILE}
        else:
            res = part_bench(args, cfg, device, save, torch.bfloat16, args.compile)
    else:
        raise SystemExit(f"unknown part {name!r}")
    status = "skipped" if "skipped" in res else "done"
    out = {"status": status, "wall_s": round(time.perf_counter() - t, 1), "result": res}
    write_json(path, out)
    return out


def orchestrate(args: argparse.Namespace) -> int:
    """Run the parts in subprocesses under the overall budget; collect everything into gpu_run.json."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: CUDA is not available (use --device cpu --tiny for the CPU check)", file=sys.stderr)
        return 2
    cfg = config(args)
    start = time.monotonic()
    report = {
        "command": " ".join(sys.argv),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
        | {
            "model": args.model,
            "device": args.device,
            "tiny": args.tiny,
            "edgetam": not args.no_edgetam,
            "budget_s": args.budget_s,
            "frames_dir": str(args.frames_dir) if args.frames_dir else "synthetic",
        },
        "environment": environment(device),
        "parts": {},
    }
    summary = args.out_dir / "gpu_run.json"
    write_json(summary, report)
    names = [n for n in PARTS if not args.parts or n in args.parts.split(",")]
    scale = args.budget_s / sum(PARTS[n] for n in names if not (args.tiny and n == "bench_bf16_compiled"))
    slack = 0.0
    for name in names:
        if args.tiny and name == "bench_bf16_compiled":  # known without starting a subprocess
            report["parts"][name] = {"status": "skipped", "result": {"skipped": TINY_NO_COMPILE}}
            continue
        remaining = args.budget_s - (time.monotonic() - start)
        budget = min(PARTS[name] * scale + slack, remaining)
        if budget < 10:
            report["parts"][name] = {"status": "skipped", "reason": f"overall budget spent ({args.budget_s} s)"}
            write_json(summary, report)
            continue
        t = time.monotonic()
        cmd = [sys.executable, str(Path(__file__).resolve()), str(args.out_dir), "--part", name, *args.passthrough]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        print(f"[gpu_run] {name}: budget {budget:.0f} s", flush=True)
        try:
            proc = subprocess.run(cmd, env=env, timeout=budget, capture_output=True, text=True)
            status = None if proc.returncode == 0 else "error"
            tail = (proc.stdout + proc.stderr)[-3000:]
        except subprocess.TimeoutExpired as exc:
            status, tail = "timeout", str(exc.stdout or "")[-1000:] + str(exc.stderr or "")[-2000:]
        used = time.monotonic() - t
        slack = max(0.0, budget - used)
        part_file = args.out_dir / "parts" / f"{name}.json"
        entry = json.loads(part_file.read_text()) if part_file.exists() else {"result": None}
        if status is not None:
            entry["status"] = status
            entry["log_tail"] = tail
        entry |= {"budget_s": round(budget, 1), "used_s": round(used, 1)}
        report["parts"][name] = entry
        write_json(summary, report)
        print(f"[gpu_run] {name}: {entry['status']} in {used:.0f} s", flush=True)
    report["wall_s"] = round(time.monotonic() - start, 1)
    parts = report["parts"].values()
    parity = report["parts"].get("parity", {}).get("result") or {}
    report["all_parts_ran"] = all(p["status"] in ("done", "skipped") for p in parts)
    report["parity_passed"] = bool(parity.get("passed", False)) if "parity" in report["parts"] else None
    write_json(summary, report)
    print_summary(report)
    print(f"[gpu_run] wrote {summary}")
    return 0 if report["all_parts_ran"] and report["parity_passed"] is not False else 1


def print_summary(report: dict) -> None:
    parity = (report["parts"].get("parity") or {}).get("result") or {}
    for name, c in parity.get("checks", {}).items():
        if "skipped" in c:
            print(f"  {name}: skipped ({c['skipped']})")
        else:
            verdict = "not judged (part incomplete)" if "passed" not in c else "pass" if c["passed"] else "FAIL"
            print(f"  {name}: max rel L2 {c['max_rel_l2']:.2e}, min IoU {c['min_iou']:.4f} -> {verdict}")
    for name, part in report["parts"].items():
        rows = (part.get("result") or {}).get("rows") or []
        for r in rows:
            if "ours_ms" in r:
                line = (
                    f"  {name} {r['objects']:>3} objects: official {r['official_ms']:.1f} ms, ours "
                    f"{r['ours_ms']:.1f} ms, ratio {r['ratio_ours_over_official']:.3f}"
                )
                if "edgetam_ms" in r:
                    line += (
                        f"; ours EdgeTAM {r['edgetam_ms']:.1f} ms ({r['ratio_edgetam_over_official']:.3f} of official)"
                    )
                print(line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="folder for gpu_run.json and parts/*.json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="64 px, 2 objects, few frames (the CPU check in CI)")
    p.add_argument("--model", default="sam2.1_hiera_t")
    p.add_argument("--image-size", type=int, default=1024)
    p.add_argument("--counts", default="1,4,16", help="object counts of the benchmarks")
    p.add_argument("--compile", default="reduce-overhead", help="torch.compile mode of the compiled benchmark")
    p.add_argument("--frames-dir", type=Path, default=None, help="folder of .jpg frames (default: synthetic)")
    p.add_argument("--budget-s", type=float, default=450.0, help="overall time budget in seconds")
    p.add_argument("--parts", default="", help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--no-edgetam", action="store_true", help="leave ours on EdgeTAM out of parity and benchmarks")
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.passthrough = [
        "--device",
        args.device,
        "--model",
        args.model,
        "--image-size",
        str(args.image_size),
        "--counts",
        args.counts,
        "--compile",
        args.compile,
        "--budget-s",
        str(args.budget_s),
    ]
    args.passthrough += ["--tiny"] if args.tiny else []
    args.passthrough += ["--no-edgetam"] if args.no_edgetam else []
    args.passthrough += ["--frames-dir", str(args.frames_dir)] if args.frames_dir else []
    if args.part:
        try:
            run_part(args.part, args)
        except Exception:  # noqa: BLE001 - the orchestrator records the traceback
            traceback.print_exc()
            return 1
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
