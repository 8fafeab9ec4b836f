"""``sam2-ros annotate INPUTS... --out DATASET``: arguments, checks, and the run (on Ray).

Everything that can be wrong with the command line (inputs, prompt file, options, weights) is
refused here, in one line, before Ray starts or a model loads. Then the dataset's manifest
decides what is left to do, and :mod:`sam2_ros.annotate.runner` does it.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2_ros.annotate.prompts import AUTO, DETECTIONS, FILE
from sam2_ros.errors import UsageError, UserError

if TYPE_CHECKING:
    from sam2_ros.annotate.inputs import InputSpec
    from sam2_ros.annotate.manifest import DatasetManifest
    from sam2_ros.annotate.worker import AnnotateSettings, InputJob

ANNOTATION_VERSION = 1  # bump when outputs change for the same inputs and options: finished inputs are redone


def _float_at_least(text: str, minimum: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > minimum if strict else value >= minimum) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _float_at_least(text, 0.0, strict=True)


def _non_negative_float(text: str) -> float:
    return _float_at_least(text, 0.0, strict=False)


def _auto_arg(text: str) -> tuple[str, Any]:
    import yaml  # noqa: PLC0415 - PyYAML loads only when a prompt file is read

    key, eq, value = text.partition("=")
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. points_per_side=16), got {text!r}")
    return key, yaml.safe_load(value)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sam2_ros.cli.track import _positive_int, add_tracker_arguments  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="video files, image folders and ROS 2 bags (rosbag2 folders, .mcap files); globs "
        "('bags/**/*.mcap') and @LIST (a file with one path or glob per line) are expanded",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DATASET",
        help="dataset folder: DATASET/<input>-<hash>/masks/NNNNN.png and annotations.json per input, "
        "and DATASET/manifest.json",
    )
    prompts = p.add_argument_group(
        "prompts", "per input, the first that applies: its --prompts entry, the bag's --detections-topic, --auto"
    )
    prompts.add_argument(
        "--prompts",
        type=Path,
        metavar="FILE",
        help="YAML/JSON prompt file: input -> frame -> object id -> {points, labels, box} (see docs/annotate.md)",
    )
    prompts.add_argument(
        "--detections-topic",
        metavar="TOPIC",
        help="vision_msgs/Detection2DArray topic of the bags: each detection's box prompts the "
        "image with the same header stamp",
    )
    prompts.add_argument(
        "--auto",
        action="store_true",
        help="automatic masks on the first frame (SAM 2's automatic mask generator), each "
        "tracked as an object (largest first, up to --max-objects)",
    )
    prompts.add_argument(
        "--auto-arg",
        type=_auto_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword of Meta's SAM2AutomaticMaskGenerator for --auto, e.g. points_per_side=16 "
        "or pred_iou_thresh=0.7 (repeatable; defaults are Meta's)",
    )
    p.add_argument(
        "--image-topic",
        metavar="TOPIC",
        help="image topic of the bags (default: each bag's only sensor_msgs Image/CompressedImage topic)",
    )
    add_tracker_arguments(p)
    ray = p.add_argument_group("Ray", "workers are Ray actors that load the model once and annotate whole inputs")
    ray.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="an existing Ray cluster (e.g. auto or ray://head:10001; DATASET must be a folder every "
        "node can write); default: start a local cluster",
    )
    ray.add_argument("--num-workers", type=_positive_int, default=1, metavar="N", help="actors (default 1)")
    ray.add_argument(
        "--cpus-per-worker",
        type=_positive_float,
        default=1.0,
        metavar="N",
        help="CPUs per actor, also its torch threads (default 1)",
    )
    ray.add_argument(
        "--gpus-per-worker",
        type=_non_negative_float,
        metavar="F",
        help="GPUs per actor, fractions share a GPU (e.g. 0.5; default: 1 if the cluster has GPUs, else 0)",
    )
    p.add_argument("--force", action="store_true", help="annotate finished inputs again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@dataclass
class Plan:
    """What a run will do: shared settings, the inputs left to annotate, and the manifest to record them in."""

    settings: AnnotateSettings
    jobs: list[InputJob]
    skipped: list[InputSpec]
    inputs: list[InputSpec]
    manifest: DatasetManifest
    run: dict[str, Any]  # this run's settings, written into the manifest


def plan(args: argparse.Namespace) -> Plan:
    """Check everything (one-line errors), open the dataset, and list what is left to do."""
    from sam2_ros.annotate.inputs import expand_inputs, fingerprint  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.annotate.manifest import DONE, DatasetManifest, now  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.annotate.prompts import load_prompt_file, match_prompt_file  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.annotate.runner import import_ray  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.annotate.worker import AnnotateSettings, InputJob, remove_partials  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.factory import TrackerOptions, check_options  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.settings import from_args  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    import_ray()
    try:
        import pycocotools  # noqa: F401, PLC0415 - optional extra (annotate), loaded only when used
    except ImportError as exc:
        raise UserError(
            f"sam2-ros annotate writes COCO RLE with pycocotools, which is not installed ({exc}); "
            f"install it with: pip install 'sam2_ros[annotate]'"
        ) from None
    opts = TrackerOptions.from_settings(from_args(args))
    check_options(opts)
    _check_model(opts)  # here, in a second, not in every worker after Ray started
    if args.device and args.device.startswith("cuda") and args.gpus_per_worker == 0:
        raise UsageError(f"--device {args.device} with --gpus-per-worker 0: the workers would see no GPU")
    auto_args = dict(args.auto_arg)
    if auto_args and not args.auto:
        raise UsageError("--auto-arg configures --auto; add --auto")
    if args.auto:
        _check_auto(args.backend, auto_args)
    inputs = expand_inputs(args.inputs)
    file_entries = match_prompt_file(load_prompt_file(args.prompts), inputs, args.prompts) if args.prompts else {}

    sources: dict[str, str] = {}
    for spec in inputs:
        if spec.name in file_entries:
            sources[spec.name] = FILE
        elif args.detections_topic and spec.kind == "bag":
            sources[spec.name] = DETECTIONS
        elif args.auto:
            sources[spec.name] = AUTO
    missing = [s.spec for s in inputs if s.name not in sources]
    if missing:
        raise UsageError(
            f"no prompts for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: give them in "
            f"--prompts, or use --detections-topic (bags) or --auto"
        )

    weights = _weights_identity(opts)
    settings = AnnotateSettings(
        opts,
        args.out.resolve(),
        args.max_frames,
        args.image_topic,
        args.detections_topic,
        auto_args,
        threads=max(1, int(args.cpus_per_worker)),
        skip_bad_frames=args.skip_bad_frames,
    )
    common = {
        "version": ANNOTATION_VERSION,
        "model": opts.model if opts.engine_dir is None else None,
        "weights_sha256": weights["sha256"],
        "backend": opts.backend,
        "dtype": opts.precision,
        "image_size": opts.image_size if opts.engine_dir is None else None,
        "max_objects": opts.max_objects,
        "fill_hole_area": opts.fill_hole_area,
        "max_frames": args.max_frames,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = DatasetManifest(args.out)
    remove_partials(args.out)

    jobs, skipped = [], []
    for spec in inputs:
        source = sources[spec.name]
        per_input = {
            **common,
            "prompts": source,
            "file": file_entries.get(spec.name) if source == FILE else None,
            "detections_topic": args.detections_topic if source == DETECTIONS else None,
            "auto_args": auto_args if source == AUTO else None,
            "image_topic": args.image_topic if spec.kind == "bag" else None,
        }
        key = hashlib.sha256(json.dumps(per_input, sort_keys=True, default=str).encode()).hexdigest()
        stat = fingerprint(spec.path, spec.kind)
        if not args.force and manifest.is_done(spec.name, key, fingerprint=stat):
            skipped.append(spec)
            continue
        previous = manifest.inputs.get(spec.name, {})
        done_sha = (
            previous.get("sha256")
            if not args.force and previous.get("status") == DONE and previous.get("options_key") == key
            else None
        )
        jobs.append(
            InputJob(
                spec,
                stat,
                key,
                source,
                file_entries.get(spec.name) if source == FILE else None,
                f"prompt file {args.prompts}: {spec.spec}",
                done_sha,
            )
        )

    run_doc: dict[str, Any] = {
        "model": {
            "name": opts.model,
            "backend": opts.backend,
            "dtype": opts.precision,
            "image_size": opts.image_size,
            "engines": str(opts.engine_dir) if opts.engine_dir else None,
            **weights,
        },
        "options": {
            k: v for k, v in common.items() if k not in ("model", "weights_sha256", "backend", "dtype", "image_size")
        }
        | {
            "image_topic": args.image_topic,
            "detections_topic": args.detections_topic,
            "auto": args.auto,
            "auto_args": auto_args,
            "prompt_file": str(args.prompts or "") or None,
        },
        "last_run": {"started": now(), "inputs": len(inputs), "skipped": len(skipped), "to_do": len(jobs)},
    }
    return Plan(settings, jobs, skipped, inputs, manifest, run_doc)


def run(args: argparse.Namespace) -> int:
    """Annotate; exit code 0 when every input is done, 1 when some failed, 130 on Ctrl+C."""
    from sam2_ros.annotate.manifest import DONE, FAILED, now  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.annotate.runner import run_ray  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.annotate.worker import remove_partials  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.factory import warn_random_weights  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    p = plan(args)
    if args.random_weights:
        warn_random_weights()
    print(
        f"annotate: {len(p.inputs)} inputs, {len(p.skipped)} already done, {len(p.jobs)} to do -> {args.out}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    entries: list[dict[str, Any]] = []
    try:
        if p.jobs:
            entries = run_ray(
                p.settings,
                p.jobs,
                p.manifest,
                p.run,
                args.ray_address,
                args.num_workers,
                args.cpus_per_worker,
                args.gpus_per_worker,
                progress=not args.quiet,
            )
    except KeyboardInterrupt:
        remove_partials(args.out)
        p.run["last_run"].update(finished=now(), stopped_by="interrupted")
        p.manifest.save(p.run)
        print(f"interrupted: finished inputs are in {args.out} (rerun to continue)", file=sys.stderr)
        return 130
    wall_s = time.perf_counter() - t0
    done = [e for e in entries if e.get("status") == DONE]
    failed = [e for e in entries if e.get("status") == FAILED]
    frames = sum(e.get("frames", 0) for e in done if not e.get("skipped"))
    p.run["last_run"].update(
        finished=now(),
        stopped_by="end",
        done=len(done),
        failed=len(failed),
        frames=frames,
        wall_s=round(wall_s, 3),
        fps=round(frames / wall_s, 3) if wall_s > 0 else None,
    )
    p.manifest.save(p.run)
    warned = [e for e in done if e.get("warnings") and not e.get("skipped")]
    retried = [e for e in entries if e.get("worker_deaths")]
    print(
        f"annotated {len(done)} inputs ({frames} frames, {wall_s:.1f} s), {len(p.skipped)} skipped, "
        f"{len(failed)} failed, {len(warned)} with warnings: {p.manifest.path}"
    )
    for e in warned:
        for line in e["warnings"]:
            print(f"warning: {e['input']}: {line}", file=sys.stderr)
    for e in retried:
        if e.get("status") == DONE:
            print(
                f"retried: {e['input']}: its worker died {e['worker_deaths']} time(s); done on attempt {e['attempts']}",
                file=sys.stderr,
            )
    for e in failed:
        print(f"failed: {e['input']}: {e.get('error')}", file=sys.stderr)
    return 1 if failed else 0


def _check_model(opts: Any) -> None:
    """The model name and --image-size, checked without building anything."""
    from sam2_ros.errors import UsageError  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.factory import EXPORTED_BACKENDS  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.model import canonical_name  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.model.config import get_config  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    if opts.backend in EXPORTED_BACKENDS:
        return  # the export fixes model and size
    try:
        get_config(canonical_name(opts.model), opts.image_size)
    except (ValueError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UsageError(str(msg).replace("image_size", "--image-size")) from None


def _check_auto(backend: str, auto_args: dict[str, Any]) -> None:

    if backend != "torch":
        raise UsageError("--auto runs the automatic mask generator on the PyTorch model; use --backend torch")
    try:
        from sam2_ros.image import AutomaticMaskGenerator  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    except ImportError as exc:
        raise UserError(f"--auto needs sam2_ros.image (the automatic mask generator): {exc}") from None
    known = set(inspect.signature(AutomaticMaskGenerator).parameters) - {"model", "self"}
    unknown = sorted(set(auto_args) - known)
    if unknown:
        raise UsageError(
            f"--auto-arg {', '.join(unknown)}: not a keyword of the automatic mask generator "
            f"(known: {', '.join(sorted(known))})"
        )


def _weights_identity(opts: Any) -> dict[str, Any]:
    """The weights as the manifest names them: checkpoint path and SHA-256, "random", or the export's files."""
    from sam2_ros.factory import EXPORTED_BACKENDS, resolve_checkpoint  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.model import canonical_name  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.utils.files import sha256_file  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    if opts.backend in EXPORTED_BACKENDS:
        if opts.engine_dir is None or not Path(opts.engine_dir).is_dir():
            raise FileNotFoundError(f"--engine-dir {opts.engine_dir}: not a folder")
        digest = hashlib.sha256()
        for path in sorted(Path(opts.engine_dir).glob("*.json")):  # the manifests hash every graph/engine file
            digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
        return {"checkpoint": str(opts.engine_dir), "sha256": digest.hexdigest()}
    checkpoint = resolve_checkpoint(opts.checkpoint, canonical_name(opts.model), opts.random_weights)
    if checkpoint is None:
        return {"checkpoint": "random", "sha256": "random"}
    return {"checkpoint": str(checkpoint), "sha256": sha256_file(checkpoint)}
