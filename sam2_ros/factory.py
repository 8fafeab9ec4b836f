"""Build a tracker from user-facing settings: the one place backends are chosen and wired.

The CLI (``sam2-ros track``), the bag replay and the ROS 2 node all come through here, so a
given set of options yields the same tracker everywhere.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2_ros import settings as S
from sam2_ros.errors import UsageError, UserError

if TYPE_CHECKING:
    import torch

    from sam2_ros.model import Sam2Model
    from sam2_ros.tracking import Backend, Sam2Tracker


class BackendUnavailableError(UserError):
    """An exported backend's runtime (ONNX Runtime, TensorRT, cuda-python) is missing or at a version we cannot use."""


BACKENDS = S.BACKENDS
EXPORTED_BACKENDS = S.EXPORTED_BACKENDS
DTYPES = S.PRECISIONS
DEFAULT_MODEL = S.MODEL.default
#: How each exported backend's folder is made.
EXPORT_HINTS = {
    "onnxruntime": "`python -m export onnx --model NAME --checkpoint PATH --out DIR`",
    "tensorrt": "`python -m export onnx ... --out ONNX_DIR` then `python -m export engines --onnx ONNX_DIR --out DIR`",
}


@dataclass(frozen=True)
class OptionNames:
    """How errors name the options: the CLI's flags by default; the ROS node passes its parameter names."""

    checkpoint: str = f"{S.CHECKPOINT.flag} PATH"
    random_weights: str = S.RANDOM_WEIGHTS.flag
    engine_dir: str = f"{S.ENGINE_DIR.flag} DIR"
    device: str = S.DEVICE.flag
    backend: str = S.BACKEND.flag
    precision: str = S.PRECISION.flag


CLI_OPTION_NAMES = OptionNames()


@dataclass(frozen=True)
class TrackerOptions:
    """What a user chooses: the tracker settings of ``sam2_ros.settings`` (see there, or ``sam2-ros track --help``).

    Made from a ``{setting: value}`` mapping by :meth:`from_settings`, the one adapter that the
    command line, the bag replay and the ROS node share.
    """

    backend: str = S.BACKEND.default
    model: str = S.MODEL.default
    checkpoint: Path | None = None
    random_weights: bool = S.RANDOM_WEIGHTS.default
    engine_dir: Path | None = None
    device: str | None = None  # None: cuda when there is a GPU
    precision: str = S.PRECISION.default
    image_size: int = S.IMAGE_SIZE.default
    max_objects: int = S.MAX_OBJECTS.default
    fill_hole_area: int = S.FILL_HOLE_AREA.default
    compile: str | None = None  # torch backend: torch.compile mode ("reduce-overhead" = CUDA graphs)
    names: OptionNames = CLI_OPTION_NAMES  # how errors name the options above

    @classmethod
    def from_settings(cls, values: Mapping[str, Any], names: OptionNames = CLI_OPTION_NAMES) -> TrackerOptions:
        """The options ``values`` (``{setting name: value}``, as the node's parameters hold them) describe.

        Each value is checked against its setting (one-line ``UsageError``); an empty text
        (``checkpoint``, ``engine_dir``, ``device``, ``compile``) means none.
        """
        checked = S.check_values(values)
        kwargs: dict[str, Any] = {}
        for name, value in checked.items():
            if S.BY_NAME[name].path:
                value = Path(value) if value else None
            elif value == "" and S.BY_NAME[name].default == "":
                value = None
            kwargs[name] = value
        return cls(**kwargs, names=names)


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
    import torch  # noqa: PLC0415 - loaded only to build a tracker

    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    if name == "torch":
        if engine_dir is not None:
            raise UsageError(
                f"{names.engine_dir} is for the exported backends; {names.backend} torch runs the model itself"
            )
        from sam2_ros.tracking import TorchBackend  # noqa: PLC0415 - loaded only to build a tracker

        return TorchBackend(model, device, dtype, compile=compile)
    if compile:
        raise UsageError("--compile applies to --backend torch; exported backends are compiled when they are built")
    if engine_dir is None:
        raise UsageError(
            f"{names.backend} {name} runs exported graphs: pass {names.engine_dir}, a folder written by "
            f"{EXPORT_HINTS[name]}"
        )
    if name == "onnxruntime" and dtype != torch.float32:
        raise UsageError(
            f"the exported ONNX graphs are float32; {names.backend} onnxruntime needs {names.precision} float32"
        )
    try:
        if name == "onnxruntime":
            from sam2_ros.backends.onnxruntime import OnnxRuntimeBackend  # noqa: PLC0415 - loaded only to build a tracker

            return OnnxRuntimeBackend(engine_dir, device)
        from sam2_ros.backends.tensorrt import TensorRTBackend  # precision is fixed when engines are built  # noqa: PLC0415 - loaded only to build a tracker

        return TensorRTBackend.from_dir(engine_dir, device)
    except ImportError as exc:  # a missing or wrongly pinned optional runtime: the message names the install step
        raise BackendUnavailableError(f"backend {name} is not available: {exc}") from exc


def resolve_device(name: str | None, names: OptionNames = CLI_OPTION_NAMES) -> str:
    """``name``, or cuda when there is a GPU; refuses cuda without one instead of failing mid-model."""
    import torch  # noqa: PLC0415 - loaded only to build a tracker

    if not name:
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise UsageError(f"{names.device} must be cpu, cuda or cuda:N, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{names.device} {name}: CUDA is not available on this machine; use {names.device} cpu")
    return name


def resolve_checkpoint(
    checkpoint: Path | None, model: str, random_weights: bool, names: OptionNames = CLI_OPTION_NAMES
) -> Path | None:
    """The weights to load (None = random), with how to get them when they are missing."""
    from sam2_ros import download  # noqa: PLC0415 - loaded only to build a tracker
    from sam2_ros.model import checkpoint_filename  # noqa: PLC0415 - loaded only to build a tracker

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
    """Refuse contradictory options, and settings an export folder cannot serve, before anything heavy is loaded."""
    if opts.backend not in BACKENDS:
        raise UsageError(f"unknown backend {opts.backend!r}; available: {', '.join(BACKENDS)}")
    if opts.backend in EXPORTED_BACKENDS and (opts.checkpoint is not None or opts.random_weights):
        raise UsageError(
            f"{opts.names.backend} {opts.backend} runs the weights exported into "
            f"{opts.names.engine_dir}; drop {opts.names.checkpoint} and {opts.names.random_weights}"
        )
    if opts.backend in EXPORTED_BACKENDS and opts.engine_dir is not None:
        check_export(opts)


def check_export(opts: TrackerOptions) -> None:
    """Refuse ``max_objects``, ``image_size`` and ``precision`` that the export in ``opts.engine_dir`` cannot serve.

    Read from the folder's ``engines.json`` (TensorRT: the object batch limit, image size and
    precision the engines were built for) or ``manifest.json`` (ONNX: image size; the graphs are
    float32, their object batch is unbounded). One line names both numbers and the file. The
    default ``image_size`` and ``precision`` float32 mean "the export's"; any other value must match.
    """
    # Light modules, imported here as the backends are: only a command that builds a tracker reads an export.
    from sam2_ros.backends import engines_manifest as engines  # noqa: PLC0415 - see above
    from sam2_ros.backends.manifest import MANIFEST_FILE, ManifestError  # noqa: PLC0415 - see above

    folder = Path(opts.engine_dir)
    if opts.backend == "tensorrt":
        manifest = engines.read_engines_manifest(folder)
        where = folder / "engines.json"
        limit = manifest["build"].get("max_objects")
        if isinstance(limit, int) and opts.max_objects > limit:
            raise UsageError(
                f"max_objects {opts.max_objects} exceeds the engines' object batch limit {limit} ({where}); "
                f"rebuild with --max-objects {opts.max_objects} or lower max_objects"
            )
        size = manifest["model"].get("image_size")
        built = engines.ENGINE_PRECISIONS.get(manifest["build"].get("precision"), manifest["build"].get("precision"))
        if opts.precision != S.PRECISION.default and opts.precision != built:
            raise UsageError(
                f"precision {opts.precision} differs from the engines' precision {built} ({where}); the engines' "
                f"precision is fixed when they are built: set precision {built} (or float32), or rebuild: "
                f"{engines.rebuild_command(manifest, folder)}"
            )
    else:
        where = folder / MANIFEST_FILE
        if not where.is_file():
            raise ManifestError(
                f"no {MANIFEST_FILE} in {folder}: export one with "
                f"`python -m export onnx --model NAME --checkpoint PATH --out {folder}`"
            )
        try:
            size = json.loads(where.read_text())["image_size"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"{where} is corrupt ({type(exc).__name__}: {exc}); re-export into {folder}") from exc
        if opts.precision != "float32":
            raise UsageError(
                f"precision {opts.precision}: the exported ONNX graphs ({where}) are float32; "
                f"{opts.names.backend} onnxruntime needs {opts.names.precision} float32"
            )
    if opts.image_size not in (S.IMAGE_SIZE.default, size):
        raise UsageError(
            f"image_size {opts.image_size} differs from the export's image size {size} ({where}); "
            f"leave image_size at its default or set it to {size}, or export again with --image-size {opts.image_size}"
        )


def build_tracker(opts: TrackerOptions) -> BuiltTracker:
    """The tracker ``opts`` describe (model, backend, memory bank sized for the backend)."""
    import torch  # noqa: PLC0415 - loaded only to build a tracker

    from sam2_ros.model import build_sam2, canonical_name  # noqa: PLC0415 - loaded only to build a tracker
    from sam2_ros.tracking import Sam2Tracker  # noqa: PLC0415 - loaded only to build a tracker

    check_options(opts)
    device = resolve_device(opts.device, opts.names)
    dtype = getattr(torch, opts.precision)
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
