"""``python -m export``: ONNX export (here) and TensorRT engines (``export/engines.py``).

Subcommands register themselves with ``add_parser(subparsers)`` and set ``func(args) -> int``
as the parser default. Heavy imports (torch, onnx, tensorrt) happen inside the commands,
so ``--help`` is instant and ``python -m export onnx`` works where TensorRT is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sam2_ros.settings import IMAGE_SIZE

DEFAULT_MAX_COND_FRAMES = 4


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _cmd_onnx(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    from export.onnx_export import export_onnx  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.model import build_sam2, canonical_name  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from sam2_ros.utils.files import sha256_file  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    name = canonical_name(args.model)
    if args.random_weights:
        print(
            "WARNING: --random-weights: exporting an UNTRAINED model (seeded random weights); "
            "for tests and smoke runs only.",
            file=sys.stderr,
        )
        torch.manual_seed(0)
        digest = "random"
    else:
        digest = sha256_file(args.checkpoint, progress=True)
    model = build_sam2(name, args.checkpoint, image_size=args.image_size)
    manifest = export_onnx(
        model, args.out, max_cond_frames=args.max_cond_frames, opset=args.opset, checkpoint_sha256=digest
    )
    print(
        f"exported {len(manifest.graphs)} graphs of {manifest.model} @ {manifest.image_size} px "
        f"(max_cond_frames {manifest.max_cond_frames}, opset {manifest.opset}) to {args.out}"
    )
    return 0


def _add_onnx(sub: argparse._SubParsersAction) -> None:
    from export.graphs import DEFAULT_OPSET  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    from export.onnx_checks import MAX_OPSET  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    p = sub.add_parser(
        "onnx",
        help="export the five tracker graphs to ONNX, check them, write manifest.json",
        description="Export image encoder, memory attention, mask decoder, memory encoder and "
        "mask downsampler (fp32, dynamic object batch) to DIR, check each for "
        "validity, the graph contract and TensorRT 10 operator support, and write "
        "constants.npz and manifest.json (hashes, settings).",
    )
    p.add_argument("--model", required=True, help="model name, e.g. sam2.1_hiera_t / sam2.1_hiera_base_plus")
    weights = p.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", type=Path, metavar="PATH", help="Meta's .pt or a .safetensors file")
    weights.add_argument("--random-weights", action="store_true", help="untrained weights (tests, smoke runs)")
    p.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE.default,
        metavar="N",
        help=f"model input size; the tracker's image_size must match it or stay at its default "
        f"(default {IMAGE_SIZE.default})",
    )
    p.add_argument(
        "--max-cond-frames",
        type=_positive_int,
        default=DEFAULT_MAX_COND_FRAMES,
        metavar="K",
        help="prompted frames remembered per object; fixes the memory-attention input size and "
        f"must equal the tracker's (default {DEFAULT_MAX_COND_FRAMES})",
    )
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        choices=range(DEFAULT_OPSET, MAX_OPSET + 1),
        metavar="V",
        help=f"ONNX opset, {DEFAULT_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET}: the "
        f"exporter's lowest; TensorRT 10.0 parses up to {MAX_OPSET})",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created if missing)")
    p.set_defaults(func=_cmd_onnx)


# ----------------------------------------------------------------------------- TensorRT
# ``export/engines.py`` (TensorRT builder) registers its own subcommand through
# ``add_parser(subparsers)``. It is imported here, not at module level, and only its
# import error is reported when it cannot load (no TensorRT), so `onnx` always works.
def _add_engines(sub: argparse._SubParsersAction) -> None:
    try:
        from export import engines  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch
    except ImportError as exc:
        reason = f"TensorRT engine building is unavailable here: {exc}"
        p = sub.add_parser("engines", help=f"(unavailable) build TensorRT engines: {exc}")
        p.set_defaults(func=lambda _args: _unavailable(reason))
        return
    engines.add_parser(sub)


def _unavailable(reason: str) -> int:
    print(reason, file=sys.stderr)
    return 2


# ----------------------------------------------------------------------------- entry
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_onnx(sub)
    _add_engines(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sam2_ros.cli import run_command  # noqa: PLC0415 - loaded when the subcommand runs, so parsing and --help stay free of torch

    return run_command(build_parser().parse_args(argv), "python -m export")


if __name__ == "__main__":
    sys.exit(main())
