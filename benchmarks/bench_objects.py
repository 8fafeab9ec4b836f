"""Benchmark: cost per tracked object, ours vs Meta's SAM2VideoPredictor, same weights, one run.

For each object count (default 1, 4, 16, 32) both trackers follow that many objects, one
click each on a grid over the first frame, through the same frames at the same resolution
on the same device. Reported per count: median ms per frame, the ratio ours/official, and
the cost of each added object ((ms(N) - ms(1)) / (N - 1)); for ours, the median time of
each stage (``TrackResult.timings_ms`` with the device synchronised between stages, plus
``full_res_outputs``: every object's full-resolution logits, boxes and visibility).

Like with like: Meta's ``propagate_in_video`` upsamples every object's mask to the video
resolution before it yields a frame, so ours is timed up to the same point (full-resolution
logits of every object) plus boxes. Meta's frames are preloaded and normalised by
``init_state`` (not timed); ours are decoded frames, resized and normalised inside the timed
call. The first ``--warmup`` frames (default 7: the memory bank fills up over the first 7)
are not measured. Weights are random, which does not change the amount of computation.
The two trackers run in lockstep (frame f of one, then of the other, alternating which goes
first), so a shared machine's load hits both alike; ``--repeats`` reruns each count and the
median over all measured frames is reported. Writes ``bench_objects.json`` and ``bench_objects.png``.

EdgeTAM (``--edgetam``, on by default): our tracker with EdgeTAM (random weights) runs in the same
lockstep on the same frames, reported as ``edgetam_ms``, ``edgetam_stages_ms``, its ratios to ours
(SAM 2.1) and to Meta's, and its cost per added object by stage. Meta's EdgeTAM cannot batch
objects, so there is no Meta EdgeTAM column. ``--no-official`` skips Meta's predictor (ours only,
for sizes where it would take too long on a CPU).

    python benchmarks/bench_objects.py --counts 1,4,16,32 --frames 16 --image-size 256 --device cpu
    python benchmarks/bench_objects.py --device cuda --dtype bfloat16 --image-size 1024 --frames 40
    python benchmarks/bench_objects.py --counts 1,2 --frames 9 --warmup 7 --image-size 1024 --no-official
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, autocast, grid_points, load_frames, make_edgetam, make_models, pyplot, sync, video_folder

from sam2_ros.tracking import Sam2Tracker, TorchBackend

STAGES = (
    "preprocess",
    "image_encoder",
    "memory_attention",
    "mask_decoder",
    "memory_encoder",
    "postprocess",
    "full_res_outputs",
)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc)


def run_pair(
    theirs,
    state: dict | None,
    backend,
    frames: list[np.ndarray],
    points: list[list[float]],
    device: torch.device,
    dtype: torch.dtype,
    warmup: int,
    stage_sync: bool,
    extra: dict | None = None,
):
    """All trackers in lockstep, one object per click on frame 0: frame f of Meta's, then of ours, then
    of each ``extra`` backend (e.g. ours with EdgeTAM; the order rotating per frame), so all see the
    same machine load. Returns ms per frame (frames ``warmup``..) for Meta's (empty when ``theirs``
    is None), ours, and ours per stage; with ``extra``, also ``{name: (ms, stages)}``.

    ``stage_sync``: wait for the device between our stages so the stage times are the device's
    (on a GPU this costs the CPU/GPU overlap, so there ``measure`` takes stages from a second pass).
    """
    trackers = {"ours": backend} | dict(extra or {})
    official = None
    if theirs is not None:
        theirs.reset_state(state)
        with torch.inference_mode(), autocast(device, dtype):
            for i, point in enumerate(points):
                theirs.add_new_points_or_box(state, 0, i + 1, points=[point], labels=[1])
    for name, b in trackers.items():
        tracker = Sam2Tracker(b, max_objects=len(points), fill_hole_area=0, sync_timings=stage_sync)
        tracker.track(frames[0])
        for i, point in enumerate(points):
            tracker.add_points(i + 1, [point], [1])
        trackers[name] = tracker
    if theirs is not None:
        official = theirs.propagate_in_video(state)
        with autocast(device, dtype):
            next(official)  # frame 0: the prompted frame, consolidated, nothing tracked
    sides = (["official"] if official is not None else []) + list(trackers)
    theirs_ms = []
    ms = {name: [] for name in trackers}
    stages = {name: {s: [] for s in STAGES} for name in trackers}
    for f, frame in enumerate(frames[1:], start=1):
        k = f % len(sides)
        for side in sides[k:] + sides[:k]:
            sync(device)
            t = time.perf_counter()
            if side == "official":
                with autocast(device, dtype):
                    next(official)
                sync(device)
                if f >= warmup:
                    theirs_ms.append((time.perf_counter() - t) * 1e3)
                continue
            result = trackers[side].track(frame)
            if stage_sync:
                sync(device)
            t_full = time.perf_counter()
            _ = result.logits, result.boxes, result.visible  # what Meta's predictor yields, and boxes
            sync(device)
            now = time.perf_counter()
            if f >= warmup:
                ms[side].append((now - t) * 1e3)
                for s in STAGES[:-1]:
                    stages[side][s].append(result.timings_ms.get(s, 0.0))
                stages[side]["full_res_outputs"].append((now - t_full) * 1e3)
    if official is not None:
        official.close()
    if extra is None:
        return theirs_ms, ms["ours"], stages["ours"]
    return theirs_ms, ms["ours"], stages["ours"], {n: (ms[n], stages[n]) for n in extra}


def measure(
    theirs,
    backend,
    video: Path,
    frames: list[np.ndarray],
    counts: list[int],
    device: torch.device,
    dtype: torch.dtype,
    warmup: int,
    repeats: int,
    log=print,
    on_row=None,
    extra: dict | None = None,
) -> dict:
    """All trackers at every object count; see the module docstring. ``on_row(rows)`` after each count.

    ``extra``: more of our backends timed in the same lockstep (name -> backend; e.g. ``{"edgetam": ...}``),
    reported as ``<name>_ms``, ``<name>_stages_ms`` and ratios to Meta's and to ours. ``theirs`` None
    skips Meta's predictor (ours only, e.g. where it would take too long).
    """
    extra = dict(extra or {})
    h, w = frames[0].shape[:2]
    state = None
    if theirs is not None:
        with autocast(device, dtype):
            state = theirs.init_state(str(video))
    rows = []
    for n in counts:
        points = grid_points(n, h, w)
        official, ours, stages = [], [], {s: [] for s in STAGES}
        more = {name: ([], {s: [] for s in STAGES}) for name in extra}
        row: dict = {"objects": n}
        try:
            for _ in range(repeats):
                # On a CPU, syncing is free: one pass gives both. On a GPU, stages come from a
                # second, synchronised pass.
                cpu = device.type == "cpu"
                a, b, st, ex = run_pair(
                    theirs, state, backend, frames, points, device, dtype, warmup, stage_sync=cpu, extra=extra
                )
                if not cpu:
                    _, _, st, ex_sync = run_pair(
                        theirs, state, backend, frames, points, device, dtype, warmup, True, extra=extra
                    )
                    ex = {name: (ex[name][0], ex_sync[name][1]) for name in ex}
                official += a
                ours += b
                for s in STAGES:
                    stages[s] += st[s]
                for name, (m, mst) in ex.items():
                    more[name][0].extend(m)
                    for s in STAGES:
                        more[name][1][s] += mst[s]
        except (RuntimeError, MemoryError) as exc:
            if not is_oom(exc):
                raise
            row["skipped"] = f"out of memory: {str(exc).splitlines()[0]}"
            log(f"{n:>4} objects: skipped ({row['skipped']})")
            rows.append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if on_row:
                on_row(rows)
            continue
        row |= {
            "ours_ms": float(np.median(ours)),
            "ours_stages_ms": {s: float(np.median(v)) for s, v in stages.items()},
            "ours_frames_ms": ours,
        }
        if official:
            row |= {
                "official_ms": float(np.median(official)),
                "ratio_ours_over_official": float(np.median(ours) / np.median(official)),
                # Meta's predictor decodes, resizes and normalises every frame in init_state (untimed): like
                # for like, ours without its per-frame preprocessing.
                "ratio_without_preprocess": float(
                    np.median(np.subtract(ours, stages["preprocess"])) / np.median(official)
                ),
                "official_frames_ms": official,
            }
        for name, (m, mst) in more.items():
            row[f"{name}_ms"] = float(np.median(m))
            row[f"{name}_stages_ms"] = {s: float(np.median(v)) for s, v in mst.items()}
            row[f"{name}_frames_ms"] = m
            row[f"ratio_{name}_over_ours"] = row[f"{name}_ms"] / row["ours_ms"]
            if official:
                row[f"ratio_{name}_over_official"] = row[f"{name}_ms"] / row["official_ms"]
        rows.append(row)
        add_per_object_costs(rows, list(extra))
        if on_row:
            on_row(rows)
        line = f"{n:>4} objects: ours {row['ours_ms']:8.1f} ms"
        if official:
            line = (
                f"{n:>4} objects: official {row['official_ms']:8.1f} ms   ours {row['ours_ms']:8.1f} ms   "
                f"ratio {row['ratio_ours_over_official']:.3f} ({row['ratio_without_preprocess']:.3f} without "
                f"preprocessing)"
            )
        for name in extra:
            line += f"   {name} {row[f'{name}_ms']:8.1f} ms"
        log(line)
    if theirs is not None:
        theirs.reset_state(state)
    return {"rows": rows}


def add_per_object_costs(rows: list[dict], extra: list[str] = ()) -> None:
    """Cost of each object beyond the first: (ms(N) - ms(1)) / (N - 1), per tracker and per stage."""
    base = next((r for r in rows if r["objects"] == 1 and "ours_ms" in r), None)
    if base is None:
        return
    for r in rows:
        if r["objects"] == 1 or "ours_ms" not in r:
            continue
        k = r["objects"] - 1
        r["added_object_ms"] = {"ours": (r["ours_ms"] - base["ours_ms"]) / k}
        if "official_ms" in r and "official_ms" in base:
            r["added_object_ms"]["official"] = (r["official_ms"] - base["official_ms"]) / k
        r["ours_added_object_stage_ms"] = {s: (r["ours_stages_ms"][s] - base["ours_stages_ms"][s]) / k for s in STAGES}
        for name in extra:
            r["added_object_ms"][name] = (r[f"{name}_ms"] - base[f"{name}_ms"]) / k
            r[f"{name}_added_object_stage_ms"] = {
                s: (r[f"{name}_stages_ms"][s] - base[f"{name}_stages_ms"][s]) / k for s in STAGES
            }
            r[f"ratio_{name}_added_object_over_ours"] = r["added_object_ms"][name] / r["added_object_ms"]["ours"]


def print_table(rows: list[dict], extra: list[str] = ()) -> None:
    def cell(r: dict, key: str, fmt: str = ".1f", width: int = 10) -> str:
        v = r.get(key)
        return f"{v:>{width}{fmt}}" if v is not None else f"{'-':>{width}}"

    head = f"\n{'objects':>7}{'official ms':>13}{'ours ms':>10}{'ratio':>8}{'ratio w/o pre':>15}"
    head += "".join(f"{n + ' ms':>14}{n + '/ours':>14}{n + '/official':>18}" for n in extra)
    print(head)
    for r in rows:
        if "ours_ms" not in r:
            print(f"{r['objects']:>7}  {r.get('skipped', 'skipped')}")
            continue
        line = f"{r['objects']:>7}" + cell(r, "official_ms", width=13) + cell(r, "ours_ms")
        line += cell(r, "ratio_ours_over_official", ".3f", 8) + cell(r, "ratio_without_preprocess", ".3f", 15)
        for n in extra:
            line += cell(r, f"{n}_ms", width=14) + cell(r, f"ratio_{n}_over_ours", ".3f", 14)
            line += cell(r, f"ratio_{n}_over_official", ".3f", 18)
        print(line)
    names = ["official", "ours", *extra]
    print("\ncost of each added object, ms: (ms(N) - ms(1)) / (N - 1)")
    print(f"{'objects':>7}" + "".join(f"{n:>14}" for n in names))
    for r in rows:
        add = r.get("added_object_ms")
        if add:
            print(f"{r['objects']:>7}" + "".join(f"{add[n]:>14.1f}" if n in add else f"{'-':>14}" for n in names))
    for n in ["ours", *extra]:
        key = "ours_stages_ms" if n == "ours" else f"{n}_stages_ms"
        add_key = "ours_added_object_stage_ms" if n == "ours" else f"{n}_added_object_stage_ms"
        print(f"\n{n} by stage (median ms per frame; +1 obj = cost of each added object)")
        print(f"{'objects':>7}" + "".join(f"{s:>18}" for s in STAGES))
        for r in rows:
            if key not in r:
                continue
            print(f"{r['objects']:>7}" + "".join(f"{r[key][s]:>18.1f}" for s in STAGES))
            if add_key in r:
                print(f"{'+1 obj':>7}" + "".join(f"{r[add_key][s]:>18.1f}" for s in STAGES))


def plot(rows: list[dict], out: Path, title: str) -> None:
    """Latency vs objects (both trackers) and ours by stage; matplotlib if installed, else OpenCV."""
    done = [r for r in rows if "ours_ms" in r and "official_ms" in r]
    if not done:
        return
    try:
        plt = pyplot()
    except ImportError:
        _plot_cv2(done, out, title)
        return
    n = [r["objects"] for r in done]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(n, [r["official_ms"] for r in done], "o-", label="official SAM2VideoPredictor")
    a.plot(n, [r["ours_ms"] for r in done], "s-", label="sam2_ros")
    if all("edgetam_ms" in r for r in done):
        a.plot(n, [r["edgetam_ms"] for r in done], "^-", label="sam2_ros EdgeTAM")
    a.set_xscale("log", base=2), a.set_xticks(n, [str(v) for v in n])
    a.set_xlabel("objects"), a.set_ylabel("ms per frame (median)"), a.set_title("latency vs objects"), a.legend()
    x = np.arange(len(done))
    bottom = np.zeros(len(done))
    for s in STAGES:
        v = np.array([r["ours_stages_ms"][s] for r in done])
        b.bar(x, v, 0.6, bottom=bottom, label=s)
        bottom += v
    b.set_xticks(x, [str(v) for v in n]), b.set_xlabel("objects"), b.set_ylabel("ms per frame")
    b.set_title("sam2_ros by stage"), b.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


COLOURS = [
    (127, 127, 127),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
]


def _plot_cv2(done: list[dict], out: Path, title: str) -> None:
    """The same two panels drawn with OpenCV (RGB colours, written as PNG)."""
    import cv2

    w, h, pad = 1100, 440, 60
    img = np.full((h, w, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def text(s: str, xy: tuple[int, int], scale: float = 0.45, colour=(0, 0, 0)) -> None:
        cv2.putText(img, s, xy, font, scale, colour[::-1], 1, cv2.LINE_AA)

    text(title, (pad, 25), 0.55)
    top = max(max(r["official_ms"], r["ours_ms"], sum(r["ours_stages_ms"].values())) for r in done) * 1.1
    panel_w, y0, y1 = (w - 3 * pad) // 2, 50, h - pad

    def ypix(v: float) -> int:
        return int(y1 - (y1 - y0) * v / top)

    for p in range(2):
        x0 = pad + p * (panel_w + pad)
        cv2.rectangle(img, (x0, y0), (x0 + panel_w, y1), (0, 0, 0), 1)
        for k in range(5):
            v = top * k / 4
            text(f"{v:.0f}", (x0 - 45, ypix(v) + 4), 0.35)
        text("ms per frame" if p == 0 else "sam2_ros ms by stage", (x0 + 5, y0 - 8), 0.45)
    xs = [pad + int((i + 0.5) * panel_w / len(done)) for i in range(len(done))]
    for i, r in enumerate(done):
        text(f"{r['objects']} obj", (xs[i] - 18, y1 + 18), 0.4)
        text(f"{r['objects']} obj", (xs[i] + panel_w + pad - 18, y1 + 18), 0.4)
    for k, (key, name) in enumerate((("official_ms", "official SAM2VideoPredictor"), ("ours_ms", "sam2_ros"))):
        colour = COLOURS[k][::-1]
        pts = [(x, ypix(r[key])) for x, r in zip(xs, done)]
        for a, b in zip(pts, pts[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for q in pts:
            cv2.circle(img, q, 4, colour, -1, cv2.LINE_AA)
        text(name, (pad + 10, y0 + 20 + 18 * k), 0.45, COLOURS[k])
    bar = max(10, panel_w // (2 * len(done)))
    for x, r in zip(xs, done):
        x += panel_w + pad
        base = 0.0
        for k, s in enumerate(STAGES):
            v = r["ours_stages_ms"][s]
            cv2.rectangle(img, (x - bar // 2, ypix(base + v)), (x + bar // 2, ypix(base)), COLOURS[k][::-1], -1)
            base += v
    for k, s in enumerate(STAGES):
        text(s, (2 * pad + panel_w + 10, y0 + 20 + 16 * k), 0.4, COLOURS[k])
    cv2.imwrite(str(out), img)


def memory_attention_gflop(model: str, image_size: int) -> float:
    """GFLOP of one object's memory attention over a full bank (``num_maskmem`` frames, every pointer).

    Counted by torch's FlopCounterMode on the meta device (no compute): the per-object work that
    makes up most of each added object's cost, to compare SAM 2.1 and EdgeTAM at a size by
    arithmetic as well as by time.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from sam2_ros.model import build_sam2

    net = build_sam2(model, image_size=image_size).eval().to("meta")
    feats = torch.zeros(1, net.hidden_dim, net.feat_size, net.feat_size, device="meta")
    memory = torch.zeros(net.bank_tokens, 1, net.mem_dim, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.condition_on_memory(feats, feats, memory, memory, net.max_ptr_tokens)
    return counter.get_total_flops() / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_t")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--counts", default="1,4,16,32", help="comma-separated object counts (include 1)")
    p.add_argument("--frames", type=int, default=16, help="frames per run, frame 0 included")
    p.add_argument("--warmup", type=int, default=7, help="first frames not measured")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--compile", default=None, help="torch.compile mode for our image encoder (e.g. reduce-overhead)")
    p.add_argument(
        "--frames-dir",
        type=Path,
        default=None,
        help="folder of .jpg frames (default: the bedroom clip, else synthetic shapes)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--edgetam",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time our tracker with EdgeTAM in the same lockstep (default on)",
    )
    p.add_argument("--no-official", action="store_true", help="skip Meta's predictor (ours only)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.frames <= args.warmup:
        raise SystemExit(f"--frames ({args.frames}) must exceed --warmup ({args.warmup})")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    counts = [int(c) for c in args.counts.split(",")]
    theirs, ours = make_models(args.model, args.image_size)
    theirs = None if args.no_official else theirs.to(device)
    video = video_folder(args.frames, args.frames_dir)
    frames = load_frames(video, args.frames)
    backend = TorchBackend(ours, device=device, dtype=dtype, compile=args.compile)
    extra = {}
    if args.edgetam:
        extra["edgetam"] = TorchBackend(make_edgetam(args.image_size), device=device, dtype=dtype)
    report = measure(theirs, backend, video, frames, counts, device, dtype, args.warmup, args.repeats, extra=extra)
    if args.edgetam:
        report["memory_attention_gflop_per_object"] = {
            name: memory_attention_gflop(model, args.image_size)
            for name, model in (("ours", args.model), ("edgetam", "edgetam"))
        }
    report["config"] = vars(args) | {
        "out": str(args.out),
        "frames_dir": str(args.frames_dir) if args.frames_dir else None,
        "frame_hw": list(frames[0].shape[:2]),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    report["timing_note"] = (
        "ms per frame after warm-up, median; ours includes frame resize/normalise and every "
        "object's full-resolution logits + boxes (edgetam: ours with EdgeTAM, same frames and lockstep); "
        "official includes its per-object upsampling "
        "to video resolution, its frames preloaded by init_state (not timed)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_objects.json").write_text(json.dumps(report, indent=2))
    h, w = frames[0].shape[:2]
    plot(
        report["rows"],
        args.out / "bench_objects.png",
        f"{args.model} @ {args.image_size}px, {args.device} {args.dtype}, {w}x{h} frames",
    )
    print_table(report["rows"], list(extra))
    if args.edgetam:
        flop = report["memory_attention_gflop_per_object"]
        print(
            f"memory attention per object (full bank), GFLOP: {args.model} {flop['ours']:.2f}, "
            f"edgetam {flop['edgetam']:.2f}, ratio {flop['edgetam'] / flop['ours']:.3f}"
        )
    print(report["timing_note"])
    print(f"wrote {args.out / 'bench_objects.json'} and {args.out / 'bench_objects.png'}")


if __name__ == "__main__":
    main()
