"""``python -m export engines``: TensorRT 10 engines from the exported ONNX graphs.

What could not be executed where this was written: there is no GPU and no TensorRT on
that machine, so no engine was built there; ``build_engines`` (``trt.OnnxParser``,
``BuilderFlag`` precision flags, per-layer constraints, optimisation profiles, the timing
cache, ``IProgressMonitor``) follows the TensorRT 10 Python bindings
(``python/src/infer/pyCore.cpp``, ``pyGraph.cpp``, ``python/src/parsers/pyOnnx.cpp`` of
NVIDIA/TensorRT) and NVIDIA's ``samples/python/simple_progress_monitor``. What was run
instead (tests/test_tensorrt.py, CPU): every decision made before TensorRT is called --
which ONNX nodes stay in float32, the optimisation profiles from the command line, the
trtexec script, the build progress display -- on ONNX graphs exported in the test, and
the engines.json checks. The GPU tests there build engines and skip without TensorRT.

Precision. ``--fp16`` (default) and ``--bf16`` build a *weakly typed* network from the
float32 ONNX graphs: ``BuilderFlag.FP16``/``BF16`` lets TensorRT pick half-precision
kernels, and the numerically sensitive layers are pinned to float32 with
``layer.precision``/``set_output_type`` under ``BuilderFlag.OBEY_PRECISION_CONSTRAINTS``
(the build fails rather than silently ignoring a constraint). Pinned: normalisations
(``LayerNormalization`` and the mean/variance/sqrt/divide chain of SAM's channel
LayerNorm2d), softmaxes, the sine encodings (sin/cos and the arithmetic that builds their
angles) and the RoPE rotations (products with constant cos/sin tables), by layer name: the
same list as the trtexec script's ``--layerPrecisions`` (``export/precision.py`` says which
names qualify), and engines.json lists the layers really pinned. The alternative,
``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, makes TensorRT follow the ONNX types
exactly; with our float32 graphs that is a float32 engine, and half precision would need
graphs exported with explicit casts. TensorRT 10.12 deprecated weak typing and TensorRT 11
removed it, so the builder requires TensorRT 10 (JetPack 6 ships 10.3). ``--fp32`` builds
without reduced precision and without TF32, a reference engine.

Engines and ``engines.json`` are written atomically (temporary file + ``os.replace``);
``engines.json`` last, so a directory with a valid manifest always holds complete engines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from export.onnx_checks import OnnxCheckError
from export.precision import Fp32Node, constrain_fp32, fp32_nodes, network_layer_names, pinned_layer_names
from export.progress import BuildProgress, progress_monitor
from export.trtexec import ENGINE_SUFFIX, trtexec_command, trtexec_script  # noqa: F401 (API)
from sam2_ros.backends.contract import BATCH, GRAPH_NAMES, POINTS, slot_counts
from sam2_ros.backends.engines_manifest import ENGINES_FILE, FORMAT_VERSION
from sam2_ros.backends.manifest import read_manifest
from sam2_ros.errors import UsageError, UserError
from sam2_ros.settings import MAX_OBJECTS
from sam2_ros.utils.files import atomic_write, sha256_file

PRECISIONS = ("fp16", "bf16", "fp32")
DEFAULT_TIMING_CACHE = Path("engines") / "timing.cache"


# ----------------------------------------------------------------------- profiles
def graph_dims(model) -> dict[str, list[int | str]]:
    """Each graph input's dimensions: sizes, or the contract's symbols (``B``, ``N``)."""
    inits = {t.name for t in model.graph.initializer}
    dims = {}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims[inp.name] = [d.dim_param if d.dim_param else d.dim_value for d in inp.type.tensor_type.shape.dim]
    return dims


def profile_shapes(model, max_objects: int, max_points: int) -> dict[str, dict[str, list[int]]]:
    """Optimisation profile (min/opt/max shapes) of every input with a dynamic axis.

    ``B`` (objects per call): 1 / min(4, max) / ``max_objects``; ``N`` (prompt points):
    1 / min(2, max) / ``max_points``. A graph without dynamic axes gets no profile.
    """
    if max_objects < 1 or max_points < 1:
        raise UsageError(f"--max-objects and --max-points must be >= 1, got {max_objects} and {max_points}")
    ranges = {BATCH: (1, min(4, max_objects), max_objects), POINTS: (1, min(2, max_points), max_points)}
    profile = {}
    for name, dims in graph_dims(model).items():
        unknown = [d for d in dims if isinstance(d, str) and d not in ranges or d == 0]
        if unknown:
            raise OnnxCheckError(
                f"input '{name}' has dynamic dimensions {unknown}; the export contract only has "
                f"{BATCH} (objects) and {POINTS} (points): re-export the ONNX graphs"
            )
        if not any(isinstance(d, str) for d in dims):
            continue
        shapes = [[ranges[d][k] if isinstance(d, str) else d for d in dims] for k in range(3)]
        profile[name] = {"min": shapes[0], "opt": shapes[1], "max": shapes[2]}
    return profile


# -------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class GraphPlan:
    """Everything decided about one graph before TensorRT is called."""

    graph: str
    onnx_path: Path
    onnx_sha256: str
    dims: dict[str, list[int | str]]
    profile: dict[str, dict[str, list[int]]]
    fp32: tuple[Fp32Node, ...]
    #: The layer names both builders pin to float32 (:func:`export.precision.pinned_layer_names`).
    fp32_layers: tuple[str, ...] = ()

    def reasons(self) -> dict[str, int]:
        """How many of the layers to pin each reason accounts for (norm, softmax, sine, rope)."""
        counts: dict[str, int] = {}
        for n in self.fp32:
            if n.name in self.fp32_layers:
                counts[n.reason] = counts.get(n.reason, 0) + 1
        return counts


def plan_graph(
    graph: str, onnx_path: Path, precision: str, max_objects: int, max_points: int, onnx_sha256: str | None = None
) -> GraphPlan:
    """Plan one graph; ``onnx_sha256`` when already verified (the ONNX manifest's), else computed."""
    model = onnx.load(str(onnx_path), load_external_data=False)  # structure and inline constants suffice
    fp32 = fp32_nodes(model) if precision != "fp32" else []
    return GraphPlan(
        graph,
        onnx_path,
        onnx_sha256 or sha256_file(onnx_path),
        graph_dims(model),
        profile_shapes(model, max_objects, max_points),
        tuple(fp32),
        pinned_layer_names(model, fp32),
    )


def model_settings(manifest, plans: Mapping[str, GraphPlan]):
    """The runtime's :class:`ModelSettings` from the ONNX manifest, checked against the graphs themselves.

    ``manifest`` is :func:`sam2_ros.backends.manifest.read_manifest`'s ``Manifest``. The memory-attention
    graph must take the bank the manifest's settings imply, and the image encoder its image size.
    """
    from sam2_ros.backends.graph import ModelSettings  # noqa: PLC0415 - torch, only once graphs are planned

    settings = ModelSettings(
        name=manifest.model,
        image_size=manifest.image_size,
        max_cond_frames=manifest.max_cond_frames,
        num_maskmem=manifest.num_maskmem,
        max_obj_ptrs=manifest.max_obj_ptrs,
        stability=manifest.stability,
        multimask_points=manifest.multimask_points,
        mem_tokens=getattr(manifest, "mem_tokens", None),
    )
    slots, ptrs = slot_counts(settings.max_cond_frames, settings.num_maskmem, settings.max_obj_ptrs)
    dims = plans["memory_attention"].dims
    if dims["mem_feats"][0] != slots or dims["obj_ptrs"][0] != ptrs:
        raise OnnxCheckError(
            f"memory_attention.onnx takes {dims['mem_feats'][0]} memories and {dims['obj_ptrs'][0]} "
            f"pointers, but the manifest (max_cond_frames={settings.max_cond_frames}, num_maskmem="
            f"{settings.num_maskmem}, max_obj_ptrs={settings.max_obj_ptrs}) implies {slots} and "
            f"{ptrs}: re-export the ONNX graphs"
        )
    size = plans["image_encoder"].dims["image"][-1]
    if size != settings.image_size:
        raise OnnxCheckError(f"image_encoder.onnx takes {size}x{size} images, the manifest says {settings.image_size}")
    return settings


# ---------------------------------------------------------------------------- build
class BuildError(UserError, RuntimeError):
    """An ONNX graph TensorRT cannot parse or build."""


def parser_error_report(graph: str, onnx_path: Path, errors: list[str]) -> str:
    """One readable message for the ONNX parser's errors."""
    listed = "\n".join(f"  {i + 1}. {e}" for i, e in enumerate(errors)) or "  (the parser reported no details)"
    return (
        f"TensorRT's ONNX parser rejected {onnx_path} ({graph}) with {len(errors)} error(s):\n{listed}\n"
        f"Check the graph with `python -m export check` or re-export it; run with --verbose for TensorRT's log."
    )


def describe_engine(trt, runtime, blob: bytes, plan: GraphPlan) -> dict[str, Any]:
    """An engine's I/O as engines.json records it; deserialising also proves the plan loads here."""
    from sam2_ros.backends.tensorrt import torch_dtype  # noqa: PLC0415 - the runtime module, with torch

    engine = runtime.deserialize_cuda_engine(blob)
    if engine is None:
        raise BuildError(f"the {plan.graph} engine does not deserialize on this machine (see the TensorRT log)")
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        entry = {"name": name, "dtype": str(torch_dtype(engine.get_tensor_dtype(name).name)).removeprefix("torch.")}
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            entry["shape"] = plan.dims[name]
            if name in plan.profile:
                lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
                entry["profile"] = {"min": list(lo), "opt": list(opt), "max": list(hi)}
            inputs.append(entry)
        else:
            entry["shape"] = list(engine.get_tensor_shape(name))
            outputs.append(entry)
    return {"inputs": inputs, "outputs": outputs}


def _parse(trt, builder, logger, plan: GraphPlan) -> tuple[Any, Any]:
    """The network TensorRT's ONNX parser makes of ``plan``'s graph, and the parser (it owns the weights)."""
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_path)):
        raise BuildError(
            parser_error_report(
                plan.graph, plan.onnx_path, [str(parser.get_error(i)) for i in range(parser.num_errors)]
            )
        )
    return network, parser


def _warn_unmatched(plan: GraphPlan, pinned: list[str], tool: str) -> None:
    """Say which planned layer names the parsed network lacks (they stay in reduced precision)."""
    missing = [n for n in plan.fp32_layers if n not in set(pinned)]
    if missing:
        print(
            f"warning: {plan.graph}: {len(missing)} of {len(plan.fp32_layers)} layers planned for fp32 are not "
            f"in TensorRT's network ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); {tool} "
            f"leaves them in reduced precision and engines.json does not list them",
            file=sys.stderr,
        )


def _build_one(
    trt, builder, logger, plan: GraphPlan, precision: str, workspace_gb: float, cache, verbose: bool
) -> tuple[bytes, list[str]]:
    network, _parser = _parse(trt, builder, logger, plan)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.set_timing_cache(cache, False)
    pinned = []
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    else:
        config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.BF16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = constrain_fp32(trt, network, plan.fp32_layers)
        _warn_unmatched(plan, pinned, "the builder")
    if plan.profile:
        profile = builder.create_optimization_profile()
        for name, p in plan.profile.items():
            profile.set_shape(name, p["min"], p["opt"], p["max"])
        config.add_optimization_profile(profile)
    progress = BuildProgress(plan.graph)
    if not verbose:
        config.progress_monitor = progress_monitor(trt, progress)
    blob = builder.build_serialized_network(network, config)
    if progress.cancelled:
        raise KeyboardInterrupt
    if blob is None:
        raise BuildError(
            f"TensorRT could not build {plan.graph} from {plan.onnx_path} (see its log above; "
            f"--verbose shows more; --workspace-gb raises the scratch memory limit)"
        )
    return bytes(blob), pinned


def _check_build_env(trt, env: Mapping[str, Any], precision: str) -> None:
    if int(trt.__version__.split(".")[0]) != 10:
        raise BuildError(
            f"TensorRT {trt.__version__}: this builder needs TensorRT 10 (fp16/bf16 use weakly typed "
            f"networks with per-layer fp32 constraints, which TensorRT 11 removed)"
        )
    major = int(str(env["gpu"]["compute_capability"]).split(".")[0])
    if precision == "bf16" and major < 8:
        raise BuildError(
            f"--bf16 needs compute capability 8.0 or newer; {env['gpu']['name']} has "
            f"{env['gpu']['compute_capability']}. Use --fp16"
        )


@dataclass(frozen=True)
class Job:
    """A build request resolved against its ONNX export: settings, per-graph plans, destination."""

    onnx_dir: Path
    out: Path
    precision: str
    max_objects: int
    max_points: int
    workspace_gb: float
    timing_cache: Path | None
    settings: Any  # sam2_ros.backends.tensorrt.ModelSettings
    plans: dict[str, GraphPlan]
    constants: Path
    checkpoint_sha256: str  # the exported weights ("random" for untrained ones)

    def engine_path(self, graph: str) -> Path:
        return self.out / f"{graph}{ENGINE_SUFFIX}"

    def command(self, *extra: str) -> str:
        """This job as a ``python -m export engines`` command line."""
        cache = ["--timing-cache", str(self.timing_cache)] if self.timing_cache else ["--no-timing-cache"]
        args = [
            "python",
            "-m",
            "export",
            "engines",
            "--onnx",
            str(self.onnx_dir),
            "--out",
            str(self.out),
            f"--{self.precision}",
            "--max-objects",
            str(self.max_objects),
            "--max-points",
            str(self.max_points),
            "--workspace-gb",
            str(self.workspace_gb),
            *cache,
            *extra,
        ]
        return " ".join(shlex.quote(a) for a in args)


def prepare(
    onnx_dir: Path | str,
    out_dir: Path | str | None = None,
    precision: str = "fp16",
    max_objects: int = MAX_OBJECTS.default,
    max_points: int = 8,
    workspace_gb: float = 4.0,
    timing_cache: Path | str | None = DEFAULT_TIMING_CACHE,
) -> Job:
    """Read (and verify) the ONNX export and plan every graph: the ``Job`` that every entry point
    (:func:`build_engines`, :func:`adopt_engines`, :func:`write_trtexec_script`) takes. No TensorRT needed."""
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_dir = Path(onnx_dir)
    manifest = read_manifest(onnx_dir)  # verifies every file's SHA-256
    missing = [g for g in GRAPH_NAMES if g not in manifest.graphs]
    if missing:
        raise OnnxCheckError(f"{onnx_dir} has no graphs {missing}; re-export with `python -m export onnx`")
    plans = {
        g: plan_graph(
            g, onnx_dir / manifest.graphs[g].file, precision, max_objects, max_points, manifest.graphs[g].sha256
        )
        for g in GRAPH_NAMES
    }
    settings = model_settings(manifest, plans)
    default_out = Path("engines") / f"{settings.name}_{settings.image_size}_{precision}"
    out = Path(out_dir) if out_dir is not None else default_out
    return Job(
        onnx_dir,
        out,
        precision,
        max_objects,
        max_points,
        workspace_gb,
        None if timing_cache is None else Path(timing_cache),
        settings,
        plans,
        onnx_dir / manifest.constants.file,
        manifest.checkpoint_sha256,
    )


def write_engines_manifest(
    job: Job, env: Mapping[str, Any], described: Mapping[str, dict], pinned: Mapping[str, list[str]], tool: str
) -> Path:
    """Copy the constants beside the engines and write ``engines.json`` (atomically, last)."""
    constants = job.out / job.constants.name
    atomic_write(constants, job.constants.read_bytes())
    engines = {}
    for graph, plan in job.plans.items():
        path = job.engine_path(graph)
        engines[graph] = {
            "file": path.name,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "onnx_file": plan.onnx_path.name,
            "onnx_sha256": plan.onnx_sha256,
            **described[graph],
            "fp32_layers": list(pinned[graph]),
            "fp32_reasons": plan.reasons(),
        }
    manifest = {
        "format": FORMAT_VERSION,
        "tensorrt": env["tensorrt"],
        "gpu": dict(env["gpu"]),
        "cuda": dict(env["cuda"]),
        "model": job.settings.as_dict(),
        "checkpoint_sha256": job.checkpoint_sha256,
        "build": {
            "tool": tool,
            "onnx_dir": str(job.onnx_dir.resolve()),
            "out": str(job.out),
            "precision": job.precision,
            "max_objects": job.max_objects,
            "max_points": job.max_points,
            "workspace_gb": job.workspace_gb,
            "timing_cache": None if job.timing_cache is None else str(job.timing_cache),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
        "constants": {"file": constants.name, "sha256": sha256_file(constants)},
        "engines": engines,
    }
    path = job.out / ENGINES_FILE
    atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path


def _load_timing_cache(builder, path: Path | None):
    """An ``ITimingCache`` from ``path`` (or empty); one from another GPU/TensorRT is replaced, with a warning."""
    config = builder.create_builder_config()
    cache = config.create_timing_cache(path.read_bytes() if path is not None and path.is_file() else b"")
    if not config.set_timing_cache(cache, False):
        print(
            f"warning: timing cache {path} was made for another GPU or TensorRT version; starting a new one",
            file=sys.stderr,
        )
        cache = config.create_timing_cache(b"")
    return cache


def build_engines(job: Job, verbose: bool = False) -> Path:
    """Build the five engines of ``job`` (:func:`prepare`) into ``job.out``; returns the engines.json path.

    ``job.timing_cache``: loaded when the file exists, saved (atomically) after the builds, shared
    by all five; None builds without one. ``verbose``: TensorRT's log instead of progress bars.
    """
    from sam2_ros.backends.tensorrt import import_tensorrt, runtime_environment  # noqa: PLC0415 - TensorRT on use

    trt = import_tensorrt()
    env = runtime_environment()
    _check_build_env(trt, env, job.precision)
    job.out.mkdir(parents=True, exist_ok=True)
    (job.out / ENGINES_FILE).unlink(missing_ok=True)  # a half-rebuilt folder must not pass for a complete one
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    runtime = trt.Runtime(logger)
    cache = _load_timing_cache(builder, job.timing_cache)
    described, pinned = {}, {}
    for graph, plan in job.plans.items():
        blob, pinned[graph] = _build_one(trt, builder, logger, plan, job.precision, job.workspace_gb, cache, verbose)
        described[graph] = describe_engine(trt, runtime, blob, plan)
        atomic_write(job.engine_path(graph), blob)
        print(f"{graph}: {len(blob) / 2**20:.1f} MiB, {len(pinned[graph])} layers pinned to fp32", file=sys.stderr)
    if job.timing_cache is not None:
        job.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(job.timing_cache, bytes(cache.serialize()))
    return write_engines_manifest(job, env, described, pinned, "python -m export engines")


def adopt_engines(job: Job) -> Path:
    """Write engines.json for the engines the generated trtexec script built in ``job.out``."""
    from sam2_ros.backends.tensorrt import import_tensorrt, runtime_environment  # noqa: PLC0415 - TensorRT on use

    trt = import_tensorrt()
    env = runtime_environment()
    logger = trt.Logger(trt.Logger.WARNING)
    builder, runtime = trt.Builder(logger), trt.Runtime(logger)
    described, pinned = {}, {}
    for graph, plan in job.plans.items():
        path = job.engine_path(graph)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run {job.out / 'trtexec.sh'} first")
        described[graph] = describe_engine(trt, runtime, path.read_bytes(), plan)
        # trtexec pins a name only where the parsed network has a layer of exactly that name.
        network, _parser = _parse(trt, builder, logger, plan)
        layers = network_layer_names(network)
        pinned[graph] = [n for n in plan.fp32_layers if n in layers]
        _warn_unmatched(plan, pinned[graph], "trtexec")
    return write_engines_manifest(job, env, described, pinned, "trtexec")


def write_trtexec_script(job: Job) -> Path:
    """``job.out/trtexec.sh``: the five trtexec builds, then ``--adopt``. No TensorRT needed."""
    job.out.mkdir(parents=True, exist_ok=True)
    path = job.out / "trtexec.sh"
    atomic_write(
        path,
        trtexec_script(
            job.plans, job.out, job.precision, job.workspace_gb, job.timing_cache, job.command("--adopt")
        ).encode(),
    )
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------------------ CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``engines`` on ``python -m export``'s subcommands."""
    p = subparsers.add_parser(
        "engines", help="build TensorRT engines from the exported ONNX graphs", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--onnx", type=Path, required=True, metavar="DIR", help="folder written by `python -m export onnx`")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="engine folder (default engines/<model>_<size>_<precision>/)"
    )
    prec = p.add_mutually_exclusive_group()
    for name, text in (
        ("fp16", "half precision, sensitive layers in fp32 (default)"),
        ("bf16", "bfloat16, sensitive layers in fp32 (compute capability 8.0+)"),
        ("fp32", "float32 without TF32: the reference engine"),
    ):
        prec.add_argument(f"--{name}", dest="precision", action="store_const", const=name, help=text)
    p.set_defaults(precision="fp16", func=run)
    p.add_argument(
        "--max-objects",
        type=int,
        default=MAX_OBJECTS.default,
        metavar="N",
        help=f"largest object batch: the tracker's max_objects may not exceed it (default {MAX_OBJECTS.default})",
    )
    p.add_argument("--max-points", type=int, default=8, metavar="N", help="most prompt points per object (default 8)")
    p.add_argument("--workspace-gb", type=float, default=4.0, metavar="N", help="builder scratch memory (default 4)")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--timing-cache",
        type=Path,
        default=DEFAULT_TIMING_CACHE,
        metavar="PATH",
        help=f"reusable tactic timing cache (default {DEFAULT_TIMING_CACHE})",
    )
    cache.add_argument(
        "--no-timing-cache", dest="timing_cache", action="store_const", const=None, help="build without a timing cache"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--trtexec",
        action="store_true",
        help="write OUT/trtexec.sh with the equivalent trtexec builds instead (no TensorRT needed)",
    )
    mode.add_argument("--adopt", action="store_true", help="write engines.json for engines trtexec.sh built in OUT")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log instead of progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """``python -m export engines``: build (default), ``--trtexec`` script, or ``--adopt`` trtexec's engines."""
    job = prepare(
        args.onnx, args.out, args.precision, args.max_objects, args.max_points, args.workspace_gb, args.timing_cache
    )
    try:
        if args.trtexec:
            print(f"wrote {write_trtexec_script(job)}")
        elif args.adopt:
            print(f"wrote {adopt_engines(job)}")
        else:
            print(f"wrote {build_engines(job, verbose=args.verbose)}")
    except ImportError as exc:  # no TensorRT / cuda-python here: the install hint, not a traceback
        print(f"python -m export engines: {exc}", file=sys.stderr)
        return 2
    return 0
