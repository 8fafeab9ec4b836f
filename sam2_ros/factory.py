"""Build a tracker from user-facing settings: the one place backends are chosen and wired.

The CLI (``sam2-ros track``), the bag replay and the ROS 2 node all come through here, so a
given set of options yields the same tracker everywhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sam2_ros.errors import UserError

if TYPE_CHECKING:
    import torch

    from sam2_ros.model import Sam2Model
    from sam2_ros.tracking import Backend, Sam2Tracker


class BackendUnavailableError(UserError):
    """An exported backend's runtime (ONNX Runtime, TensorRT, cuda-python) is missing or at a version we cannot use."""


BACKENDS = ("torch", "onnxruntime", "tensorrt")
#: Backends that run an export folder (``--engines DIR``) instead of building the model.
EXPORTED_BACKENDS = ("onnxruntime", "tensorrt")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_MODEL = "sam2.1_hiera_t"
#: How each exported backend's folder is made.
EXPORT_HINTS = {
    "onnxruntime": "`python -m export onnx --model NAME --checkpoint PATH --out DIR`",
    "tensorrt": "`python -m export onnx ... --out ONNX_DIR` then `python -m export engines --onnx ONNX_DIR --out DIR`",
}


@dataclass(frozen=True)
class OptionNames:
    """How errors name the options: the CLI's flags by default; the ROS node passes its parameter names."""

    checkpoint: str = "--checkpoint PATH"
    random_weights: str = "--random-weights"
    engine_dir: str = "--engines DIR"
    device: str = "--device"
    backend: str = "--backend"


CLI_OPTION_NAMES = OptionNames()


@dataclass(frozen=True)
class TrackerOptions:
    """What a user chooses; see ``sam2-ros track --help`` for each field."""

    backend: str = "torch"
    model: str = DEFAULT_MODEL
    checkpoint: Path | None = None
    random_weights: bool = False
    engine_dir: Path | None = None
    device: str | None = None
    dtype: str = "float32"
    image_size: int = 1024
    max_objects: int = 16
    fill_hole_area: int = 8
    compile: str | None = None  # torch backend: torch.compile mode ("reduce-overhead" = CUDA graphs)
    names: OptionNames = CLI_OPTION_NAMES  # how errors name the options above


@dataclass(frozen=True)
class BuiltTracker:
    tracker: Sam2Tracker
    model_name: str
    weights: str  # checkpoint path, the export's checkpoint SHA-256, or "random"


def make_backend(
    name: str,
    model: Sam2Model | None,
    device: str,
    dtype: torch.dtype,
    engine_dir: str | Path | None = None,
    compile: str | None = None,
    names: OptionNames = CLI_OPTION_NAMES,
) -> Backend:
    """The inference backend called ``name``.

    ``torch`` runs ``model``; the exported backends run the folder ``engine_dir`` and need
    no model (pass None). A tracker on an exported backend must use its
    ``max_cond_frames`` (the memory size the graphs were exported for).
    """
    import torch

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    if name == "torch":
        if engine_dir is not None:
            raise ValueError(
                f"{names.engine_dir} is for the exported backends; {names.backend} torch runs the model itself"
            )
        from sam2_ros.tracking import TorchBackend

        return TorchBackend(model, device, dtype, compile=compile)
    if compile:
        raise ValueError("--compile applies to --backend torch; exported backends are compiled when they are built")
    if engine_dir is None:
        raise ValueError(
            f"{names.backend} {name} runs exported graphs: pass {names.engine_dir}, a folder written by "
            f"{EXPORT_HINTS[name]}"
        )
    if name == "onnxruntime" and dtype != torch.float32:
        raise ValueError("the exported ONNX graphs are float32; --backend onnxruntime needs --dtype float32")
    try:
        if name == "onnxruntime":
            from sam2_ros.backends.onnxruntime import OnnxRuntimeBackend

            return OnnxRuntimeBackend(engine_dir, device)
        from sam2_ros.backends.tensorrt import TensorRTBackend  # precision is fixed when engines are built

        return TensorRTBackend.from_dir(engine_dir, device)
    except ImportError as exc:  # a missing or wrongly pinned optional runtime: the message names the install step
        raise BackendUnavailableError(f"backend {name} is not available: {exc}") from exc


def resolve_device(name: str | None, names: OptionNames = CLI_OPTION_NAMES) -> str:
    """``name``, or cuda when there is a GPU; refuses cuda without one instead of failing mid-model."""
    import torch

    if not name:
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"{names.device} must be cpu, cuda or cuda:N, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{names.device} {name}: CUDA is not available on this machine; use {names.device} cpu")
    return name


def resolve_checkpoint(
    checkpoint: Path | None, model: str, random_weights: bool, names: OptionNames = CLI_OPTION_NAMES
) -> Path | None:
    """The weights to load (None = random), with how to get them when they are missing."""
    from sam2_ros import download
    from sam2_ros.model import checkpoint_filename

    if random_weights:
        return None
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise FileNotFoundError(
                f"checkpoint {checkpoint} does not exist; get Meta's weights with `sam2-ros download {model}`"
            )
        return checkpoint
    path = download.DEFAULT_DIR / checkpoint_filename(model)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint for {model}: {path} does not exist. Get it with `sam2-ros download {model}` "
            f"(or set {names.checkpoint}; {names.random_weights} runs untrained weights for smoke tests only)"
        )
    return path


def warn_random_weights() -> None:
    bar = "!" * 78
    print(
        f"{bar}\nWARNING: random weights: the model is UNTRAINED (seeded random weights).\n"
        f"Its masks are meaningless. Use this for smoke tests and CI only.\n{bar}",
        file=sys.stderr,
    )


def check_options(opts: TrackerOptions) -> None:
    """Refuse contradictory options before anything heavy is loaded."""
    if opts.backend not in BACKENDS:
        raise ValueError(f"unknown backend {opts.backend!r}; available: {', '.join(BACKENDS)}")
    if opts.backend in EXPORTED_BACKENDS and (opts.checkpoint is not None or opts.random_weights):
        raise ValueError(
            f"{opts.names.backend} {opts.backend} runs the weights exported into "
            f"{opts.names.engine_dir}; drop {opts.names.checkpoint} and {opts.names.random_weights}"
        )


def build_tracker(opts: TrackerOptions) -> BuiltTracker:
    """The tracker ``opts`` describe (model, backend, memory bank sized for the backend)."""
    import torch

    from sam2_ros.model import build_sam2, canonical_name
    from sam2_ros.tracking import Sam2Tracker

    check_options(opts)
    device = resolve_device(opts.device, opts.names)
    dtype = getattr(torch, opts.dtype)
    if opts.backend in EXPORTED_BACKENDS:
        backend = make_backend(opts.backend, None, device, dtype, opts.engine_dir, opts.compile, opts.names)
        model_name = backend.settings.name
        weights = getattr(backend, "checkpoint_sha256", str(opts.engine_dir))
    else:
        model_name = canonical_name(opts.model)
        checkpoint = resolve_checkpoint(opts.checkpoint, model_name, opts.random_weights, opts.names)
        if checkpoint is None:
            torch.manual_seed(0)  # reproducible smoke runs
        model = build_sam2(model_name, checkpoint, image_size=opts.image_size, device=device)
        backend = make_backend(opts.backend, model, device, dtype, opts.engine_dir, opts.compile, opts.names)
        weights = "random" if checkpoint is None else str(checkpoint)
    if weights == "random":
        warn_random_weights()
    # Exported graphs fix the bank size; the tracker follows the backend.
    bank = {"max_cond_frames": backend.max_cond_frames} if hasattr(backend, "max_cond_frames") else {}
    tracker = Sam2Tracker(backend, max_objects=opts.max_objects, fill_hole_area=opts.fill_hole_area, **bank)
    return BuiltTracker(tracker, model_name, weights)
