"""``sam2-ros track INPUT``: run the streaming tracker over a video, an image folder or a camera.

Frames go through the tracker exactly as on a robot: ``track(frame)``, then the prompts
given for that frame (``@N``) as taps on it, then the outputs. A prompt ``@N`` therefore
corrects frame N's output and shapes the memory every later frame attends to, and an
object first prompted at N is absent from frames before N.

torch and the model are imported inside the functions that need them so that building
the argument parser (``sam2-ros --help``, ``sam2-ros download``) stays instant.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from sam2_ros.errors import UsageError
from sam2_ros.factory import TrackerOptions
from sam2_ros.io.prompts import (
    BOX_FORMAT,
    POINT_FORMAT,
    ObjectPrompt,
    build_schedule,
    parse_box,
    parse_point,
    track_frame,
)
from sam2_ros.settings import add_options, from_args

if TYPE_CHECKING:
    from sam2_ros.io.sources import FrameSource
    from sam2_ros.io.writers import RunSummary
    from sam2_ros.tracking import Sam2Tracker
    from sam2_ros.utils.files import StagedDir

DEFAULT_OVERLAY_FPS = 30.0


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """--model and its weights (--checkpoint or --random-weights): every command that builds a model."""
    add_options(p.add_mutually_exclusive_group(), ["checkpoint", "random_weights"])
    add_options(p, ["model"])


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """Model, backend and tracking options (shared with ``sam2-ros annotate``, which runs the same tracker).

    Made from the settings table (``sam2_ros.settings``): names, defaults, bounds and help are its.
    """
    add_model_arguments(p)
    add_options(p, ["backend", "engine_dir", "image_size", "device", "precision", "compile"])
    p.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="skip images that cannot be decoded (truncated/corrupt, another size) and keep the frames of "
        "a video that ends early, recording them in the output's JSON (default: stop with an error)",
    )
    add_options(p, ["max_objects", "fill_hole_area"])


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sam2_ros.ros.bags import replay  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    p.add_argument(
        "input", nargs="?", help="a video file, a folder of jpg/png frames (natural order) or a camera index (0)"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder: masks/NNNNN.png, overlay.mp4, summary.json; written whole on success, "
        "nothing on failure; must be new or empty unless --overwrite",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out folder (whole, once the run succeeded)"
    )
    p.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        metavar=POINT_FORMAT,
        help="click in frame pixels; LABEL 1 = object (default), 0 = background; FRAME default 0; "
        "repeatable (an object's clicks on one frame are sent together)",
    )
    p.add_argument(
        "--box",
        type=parse_box,
        action="append",
        default=[],
        metavar=BOX_FORMAT,
        help="box in frame pixels; FRAME default 0; repeatable; combines with --point for the same object and frame",
    )
    add_tracker_arguments(p)
    p.add_argument(
        "--auto",
        action="store_true",
        help="find the objects on the first frame with automatic masks (Meta's generator defaults) and "
        "track the --max-objects best of them (ids 1..N); torch backend, no --point/--box",
    )
    p.add_argument("--save-logits", action="store_true", help="also write logits/NNNNN.npz (float32 per object)")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    add_depth_arguments(p)
    replay.add_arguments(p)


def _intrinsics(text: str):
    from sam2_ros.geometry import parse_intrinsics  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    try:
        return parse_intrinsics(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_depth_arguments(p: argparse.ArgumentParser) -> None:
    """3-D from registered depth (``sam2_ros.geometry``): files here, bag topics in the replay group."""
    group = p.add_argument_group(
        "3-D from depth", "per-object 3-D positions and extents in summary.json (camera optical frame, metres)"
    )
    group.add_argument(
        "--depth",
        type=Path,
        metavar="DIR",
        help="folder of depth images registered to INPUT, one per frame in natural order: 16-bit "
        "PNG (millimetres) or float32 TIFF (metres); needs --intrinsics",
    )
    group.add_argument(
        "--intrinsics",
        type=_intrinsics,
        metavar="FX,FY,CX,CY",
        help="pinhole intrinsics of INPUT's frames in pixels, e.g. 525,525,319.5,239.5",
    )
    group.add_argument(
        "--depth-scale",
        type=float,
        default=None,
        metavar="M",
        help="metres per unit of 16-bit depth (default 0.001: millimetres)",
    )
    group.add_argument(
        "--depth-topic",
        metavar="TOPIC",
        help="with --bag: sensor_msgs/Image depth registered to --image-topic (16UC1 mm or 32FC1 m); "
        "the output bag gets detections_3d, target_point and object_points",
    )
    group.add_argument("--camera-info-topic", metavar="TOPIC", help="with --depth-topic: its sensor_msgs/CameraInfo")
    group.add_argument(
        "--lost-after",
        type=_non_negative_int,
        default=15,
        metavar="N",
        help="track state: an object unseen for more than N frames is lost (default 15)",
    )


def run(args: argparse.Namespace) -> int:
    """Track INPUT and write DIR; returns the exit code (130 when stopped with Ctrl+C)."""
    if args.auto and (args.point or args.box or args.bag is not None):
        raise UsageError(
            "--auto finds the objects on INPUT's first frame itself: drop --point/--box (bags: not supported)"
        )
    if args.bag is not None or args.out_bag is not None:
        from sam2_ros.ros.bags.replay import run_replay  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

        return run_replay(args)
    if args.input is None or args.out is None:
        raise UsageError("give INPUT and --out DIR (or --bag IN and --out-bag OUT to replay a ROS 2 bag)")
    from sam2_ros.factory import build_tracker, check_options  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.io.sources import open_source  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.io.writers import RunSummary  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.utils.files import StagedDir  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    schedule = build_schedule(args.point, args.box)
    obj_ids = {p.obj_id for prompts in schedule.values() for p in prompts}
    if len(obj_ids) > args.max_objects:
        raise UsageError(f"{len(obj_ids)} objects prompted but --max-objects is {args.max_objects}")
    depth = _depth_source(args)
    opts = TrackerOptions.from_settings(from_args(args))
    check_options(opts)
    # a bad INPUT or an --out in use fails before the model is built
    with open_source(args.input, args.skip_bad_frames) as source, StagedDir(args.out, args.overwrite) as staged:
        built = build_tracker(opts)
        tracker, backend = built.tracker, built.tracker.backend
        summary = RunSummary(
            {
                "model": built.model_name,
                "weights": built.weights,
                "backend": backend.name,
                "device": str(backend.device),
                "dtype": args.precision,
                "image_size": backend.image_size,
                "input": {
                    "source": args.input,
                    "kind": source.kind,
                    "fps": source.fps,
                    "frame_count": source.frame_count,
                },
                "prompts": [text for prompts in schedule.values() for p in prompts for text in p.texts],
            }
        )
        if depth is not None:
            summary.header["depth"] = {
                "source": str(args.depth),
                "intrinsics": list(args.intrinsics[:4]),
                "depth_scale": args.depth_scale,
            }
        if not schedule and not args.auto:
            summary.warn("no --point/--box prompts (and no --auto): nothing to track, every mask is empty")
        return _track(source, tracker, schedule, summary, args, staged, depth)


def _depth_source(args: argparse.Namespace):
    """The --depth folder (checked with its flags before the model is built), or None."""
    if args.depth_topic is not None or args.camera_info_topic is not None:
        raise UsageError("--depth-topic and --camera-info-topic are for --bag; use --depth DIR with files")
    if args.depth is None:
        if args.intrinsics is not None or args.depth_scale is not None:
            raise UsageError("--intrinsics and --depth-scale go with --depth DIR")
        return None
    if args.intrinsics is None:
        raise UsageError("--depth needs --intrinsics FX,FY,CX,CY (the colour camera's, in pixels)")
    if args.depth_scale is not None and not args.depth_scale > 0:
        raise UsageError(f"--depth-scale must be > 0, got {args.depth_scale}")
    from sam2_ros.io.depth_source import DepthFolder  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    return DepthFolder(args.depth)


def _track(
    source: FrameSource,
    tracker: Sam2Tracker,
    schedule: dict[int, list[ObjectPrompt]],
    summary: RunSummary,
    args: argparse.Namespace,
    staged: StagedDir,
    depth=None,
) -> int:
    """The frame loop, writing into ``staged``: published to --out when it ends well, else discarded.

    Ctrl+C ends a camera run normally (that is how a live stream stops) and discards a file
    input's unfinished outputs; an error discards them too, so --out never holds a run that
    looks finished but is not.
    """

    from sam2_ros.geometry import locate_result  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.io.writers import LogitsWriter, MaskWriter, OverlayWriter  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.tracking.track_state import TrackStates  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    tracker.states = TrackStates(lost_after_frames=args.lost_after)

    out: Path = staged.path
    masks = MaskWriter(out)
    logits = LogitsWriter(out) if args.save_logits else None
    overlay = None if args.no_overlay else OverlayWriter(out / "overlay.mp4", source.fps or DEFAULT_OVERLAY_FPS)
    frames = source if args.max_frames is None else itertools.islice(source, args.max_frames)
    total = min(filter(None, (source.frame_count, args.max_frames)), default=None)
    done, stopped_by, t_start = 0, "error", time.perf_counter()
    try:
        with tqdm(frames, total=total, unit="frame", desc="track", dynamic_ncols=True) as bar:
            for index, frame in enumerate(bar):
                t0 = time.perf_counter()
                auto = args.max_objects if index == 0 and args.auto else 0
                result, tracker_ms = track_frame(tracker, frame, schedule.get(index, []), auto_objects=auto)
                objects, labels = result.objects, result.label_image()
                host_logits = result.logits.float().cpu().numpy() if logits is not None else None
                located = (
                    None
                    if depth is None
                    else locate_result(result, depth.read(index), args.intrinsics, args.depth_scale)
                )
                latency_ms = (time.perf_counter() - t0) * 1e3
                masks.write(index, labels)
                if logits is not None:
                    logits.write(index, result.object_ids, host_logits)
                if overlay is not None:
                    overlay.write(frame, labels, objects)
                summary.add(
                    index,
                    result.frame_hw,
                    objects,
                    latency_ms,
                    tracker_ms,
                    [p.obj_id for p in schedule.get(index, [])],
                    located,
                )
                done = index + 1
                if index == 0 and args.auto and not objects:
                    summary.warn("--auto found no objects on frame 0: nothing to track, every mask is empty")
                bar.set_postfix(objects=len(objects), ms=f"{latency_ms:.0f}", refresh=False)
        stopped_by = "max frames" if done == args.max_frames else "end of input"
    except KeyboardInterrupt:
        stopped_by = "interrupted"
    finally:
        if overlay is not None:
            overlay.close()
    wall_s = time.perf_counter() - t_start
    if stopped_by == "interrupted" and source.kind != "camera":
        print(f"interrupted after {done} frames: nothing written to {args.out}", file=sys.stderr)
        return 130
    yielded = getattr(source, "yielded", None)
    if source.skipped and yielded is not None:  # masks/NNNNN.png counts frames tracked; name their files
        for entry, position in zip(summary.frames, yielded):
            entry["input_index"] = position
    summary.header["skipped_frames"] = source.skipped
    summary.header["ended_early"] = source.ended_early
    for line in source.problems():
        summary.warn(line)
    late = sorted(f for f in schedule if f >= done)
    if late:
        summary.warn(f"prompts for frames {late} were never applied: tracking stopped after {done} frames")
    summary.write(out / "summary.json", stopped_by, wall_s)
    staged.publish()
    summary.print_warnings()
    totals = summary.totals(wall_s)
    print(f"tracked {done} frames ({totals['fps']} fps, p50 {totals['latency_ms']['p50']} ms): {args.out}")
    return 130 if stopped_by == "interrupted" else 0
