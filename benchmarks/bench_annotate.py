"""Benchmark: ``sam2-ros annotate`` throughput on Ray with 1 and 2 workers, and Ray's overhead per input.

The same inputs (short clips cut from ../shared/data/videos, one box prompt each) are annotated
three times into fresh datasets, with the command's own planning and worker code:

* in-process, without Ray (``runner.run_local``): the baseline, run first and last (the mean
  of the two, since other load on a shared machine drifts);
* on a local Ray cluster with 1 worker, then with 2 workers (``runner.run_ray``).

Reported: model/worker start-up, annotation wall time and frames/s (start-up excluded, and
end to end), the ratios ray-1/in-process and ray-2/ray-1, and Ray's overhead per input, twice:
(ray-1 annotation time - in-process annotation time) / inputs, which CPU contention from other
processes can swamp, and directly, the driver's submit-to-result time minus the worker's own
time for the input. Every run uses one torch thread
per worker (``--cpus-per-worker 1``), so the 1-worker runs do the same arithmetic. Random
weights (no pretrained weights are reachable here) do not change the amount of computation.
Writes ``bench_annotate.json``.

    python benchmarks/bench_annotate.py --inputs 4 --frames 8 --image-size 128
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_ros.annotate.runner import run_local, run_ray  # noqa: E402
from sam2_ros.cli import build_parser  # noqa: E402
from sam2_ros.cli.annotate import plan  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CLIPS = ("16_robotarm.mp4", "02_cups.mp4", "03_blocks.mp4", "08_driving.mp4")
SIZE = (640, 360)


def make_inputs(folder: Path, count: int, frames: int) -> tuple[list[Path], Path]:
    """``count`` mp4 clips of ``frames`` frames (640x360) and a prompt file with a centre box on frame 0 of each."""
    paths, prompts = [], {}
    for i in range(count):
        capture = cv2.VideoCapture(str(VIDEOS / CLIPS[i % len(CLIPS)]))
        for _ in range(i // len(CLIPS) * frames):  # later rounds take later frames of the same clips
            capture.read()
        path = folder / f"clip{i:02d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, SIZE)
        for _ in range(frames):
            ok, bgr = capture.read()
            if not ok:
                raise RuntimeError(f"{CLIPS[i % len(CLIPS)]} has too few frames")
            writer.write(cv2.resize(bgr, SIZE, interpolation=cv2.INTER_AREA))
        writer.release()
        capture.release()
        paths.append(path)
        prompts[path.name] = {0: {1: {"box": [220, 100, 420, 260]}}}
    prompt_file = folder / "prompts.json"
    prompt_file.write_text(json.dumps(prompts))
    return paths, prompt_file


def measure(name: str, argv: list[str], workers: int | None) -> dict:
    """One annotation of all inputs into a fresh dataset; ``workers`` None = in-process."""
    args = build_parser().parse_args(argv)
    with contextlib.redirect_stderr(io.StringIO()):
        p = plan(args)
        if workers is None:
            entries = run_local(p.settings, p.jobs, p.manifest, p.run, progress=False)
        else:
            entries = run_ray(
                p.settings,
                p.jobs,
                p.manifest,
                p.run,
                num_workers=workers,
                cpus_per_worker=1.0,
                gpus_per_worker=0.0,
                progress=False,
            )
    failed = [e for e in entries if e["status"] != "done"]
    if failed:
        raise RuntimeError(f"{name}: {failed[0]['input']}: {failed[0].get('error')}")
    t = p.run["last_run"]["timings"]
    frames = sum(e["frames"] for e in entries)
    startup = t.get("ray_init_s", 0.0) + t["workers_ready_s"]
    return {
        "inputs": len(entries),
        "frames": frames,
        **t,
        "startup_s": round(startup, 3),
        "fps": round(frames / t["annotate_s"], 3),
        "fps_end_to_end": round(frames / (startup + t["annotate_s"]), 3),
        "per_input_s": [e["timings"]["wall_s"] for e in entries],
        "round_trip_minus_worker_s": [
            round(e["timings"]["round_trip_s"] - e["timings"]["wall_s"], 4)
            for e in entries
            if "round_trip_s" in e["timings"]
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=4)
    p.add_argument("--frames", type=int, default=8, help="frames per input")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--model", default="sam2.1_hiera_t")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    logging.getLogger("ray").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs, prompt_file = make_inputs(tmp, args.inputs, args.frames)
        common = [
            "annotate",
            *map(str, inputs),
            "--prompts",
            str(prompt_file),
            "--random-weights",
            "--model",
            args.model,
            "--image-size",
            str(args.image_size),
            "--quiet",
        ]
        runs = {}
        # In-process first and last: other load on the machine drifts, the mean of the two is the baseline.
        for name, workers in (
            ("in-process", None),
            ("ray 1 worker", 1),
            ("ray 2 workers", 2),
            ("in-process again", None),
        ):
            runs[name] = measure(name, [*common, "--out", str(tmp / name.replace(" ", "_"))], workers)
            print(f"{name}: {runs[name]}", flush=True)
    one, two = runs["ray 1 worker"], runs["ray 2 workers"]
    base = {"annotate_s": (runs["in-process"]["annotate_s"] + runs["in-process again"]["annotate_s"]) / 2}
    base["fps"] = runs["in-process"]["frames"] / base["annotate_s"]
    report = {
        "config": {
            "inputs": args.inputs,
            "frames_per_input": args.frames,
            "frame_size": list(SIZE),
            "image_size": args.image_size,
            "model": args.model,
            "weights": "random",
            "device": "cpu",
            "threads_per_worker": 1,
        },
        "runs": runs,
        "ratios": {
            "ray1_vs_inprocess_fps": round(one["fps"] / base["fps"], 3),
            "ray2_vs_ray1_fps": round(two["fps"] / one["fps"], 3),
            "ray2_vs_ray1_fps_end_to_end": round(two["fps_end_to_end"] / one["fps_end_to_end"], 3),
        },
        "ray_overhead_per_input_s": round((one["annotate_s"] - base["annotate_s"]) / args.inputs, 3),
        # Direct measure, immune to CPU contention: what the driver waits per input beyond the worker's own time.
        "ray_round_trip_overhead_per_input_s": round(
            sum(one["round_trip_minus_worker_s"]) / len(one["round_trip_minus_worker_s"]), 4
        ),
        "ray_startup_s": {
            "ray_init": one["ray_init_s"],
            "workers_ready_1": one["workers_ready_s"],
            "workers_ready_2": two["workers_ready_s"],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_annotate.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'run':<15} {'startup s':>10} {'annotate s':>11} {'frames/s':>9} {'e2e frames/s':>13}")
    for name, r in runs.items():
        print(
            f"{name:<15} {r['startup_s']:>10.2f} {r['annotate_s']:>11.2f} {r['fps']:>9.2f} {r['fps_end_to_end']:>13.2f}"
        )
    print(f"ratios: {report['ratios']}")
    print(
        f"Ray overhead per input: {report['ray_overhead_per_input_s']} s (ray 1 worker vs in-process, start-up "
        f"excluded); driver round trip beyond the worker's time: {report['ray_round_trip_overhead_per_input_s']} s"
    )
    print(f"wrote {args.out / 'bench_annotate.json'}")


if __name__ == "__main__":
    main()
