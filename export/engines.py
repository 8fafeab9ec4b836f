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
angles) and the RoPE rotations (products with constant cos/sin tables). The alternative,
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
import re
import shlex
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENGINE_SUFFIX = ".engine"
PRECISIONS = ("fp16", "bf16", "fp32")
DEFAULT_TIMING_CACHE = Path("engines") / "timing.cache"

#: Ops always kept in float32 under fp16/bf16, with the reason recorded in engines.json.
FP32_OPS = {"LayerNormalization": "norm", "GroupNormalization": "norm", "InstanceNormalization": "norm",
            "Softmax": "softmax", "LogSoftmax": "softmax", "Sin": "sine", "Cos": "sine"}
ARITH_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Neg", "Reciprocal"})
#: Ops that may build a sine encoding's angle: arithmetic, and the projection of random-Fourier encodings.
ANGLE_OPS = ARITH_OPS | {"MatMul", "Gemm"}
#: Ops that move or relabel data without arithmetic; walked through when tracing angles and tables.
PASS_OPS = frozenset({"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand", "Cast", "Identity", "Transpose"})
ANGLE_DEPTH = 8  # nodes walked back from a sin/cos to find the arithmetic that builds its angle

_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]\x1e\x1f]+)\]")


# ------------------------------------------------------------------ precision plan (pure)
@dataclass(frozen=True)
class Fp32Node:
    """An ONNX node whose TensorRT layers stay float32, and why (norm, softmax, sine, rope)."""

    name: str
    op: str
    reason: str
    outputs: tuple[str, ...]


class _Graph:
    """Producer/consumer lookups over an ONNX graph, and its constant tensors as numpy."""

    def __init__(self, graph) -> None:
        from onnx import helper, numpy_helper

        self._to_array, self._attr_value = numpy_helper.to_array, helper.get_attribute_value
        self.nodes = list(graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._inits = {t.name: t for t in graph.initializer}
        self._values: dict[str, Any] = {}

    def constant(self, name: str, depth: int = 4):
        """The value of tensor ``name`` if it is a constant (through data-movement ops), else None."""
        if name in self._values:
            return self._values[name]
        value = None
        init = self._inits.get(name)
        node = self.producer.get(name)
        if init is not None:  # external data (not loaded) counts as unknown
            value = None if init.data_location == init.EXTERNAL else self._to_array(init)
        elif node is not None and node.op_type == "Constant" and node.attribute:
            attr = self._attr_value(node.attribute[0])
            value = self._to_array(attr) if hasattr(attr, "raw_data") else np.asarray(attr)
        elif node is not None and node.op_type in PASS_OPS and depth > 0 and node.input:
            value = self.constant(node.input[0], depth - 1)
        self._values[name] = value
        return value

    def is_constant(self, name: str) -> bool:
        return self.constant(name) is not None


def _node(n, reason: str) -> Fp32Node:
    return Fp32Node(n.name, n.op_type, reason, tuple(n.output))


def _norm_chain(g: _Graph, sqrt) -> list:
    """SAM's LayerNorm2d: mean -> x-mean -> (.)^2 -> mean -> +eps -> sqrt -> divide; [] if not that."""
    add = g.producer.get(sqrt.input[0])
    if add is None or add.op_type != "Add":
        return []
    var = next((g.producer.get(i) for i in add.input if not g.is_constant(i)), None)
    if var is None or var.op_type != "ReduceMean":
        return []
    sq = g.producer.get(var.input[0])
    if sq is None or sq.op_type not in ("Pow", "Mul"):
        return []
    sub = g.producer.get(sq.input[0])
    if sub is None or sub.op_type != "Sub":
        return []
    mean = g.producer.get(sub.input[1])
    if mean is None or mean.op_type != "ReduceMean":
        return []
    divs = [c for c in g.consumers.get(sqrt.output[0], []) if c.op_type == "Div" and c.input[1] == sqrt.output[0]]
    return [mean, sub, sq, var, add, sqrt, *divs]


def _angle_chain(g: _Graph, trig) -> list:
    """The arithmetic nodes that compute a sin/cos argument (positions x frequencies, or a projection)."""
    found, frontier, seen = [], [trig.input[0]], set()
    for _ in range(ANGLE_DEPTH):
        nxt = []
        for name in frontier:
            n = g.producer.get(name)
            if n is None or id(n) in seen or n.op_type not in ANGLE_OPS | PASS_OPS:
                continue
            seen.add(id(n))
            if n.op_type in ANGLE_OPS:
                found.append(n)
            nxt += [i for i in n.input if i and not g.is_constant(i)]
        frontier = nxt
    return found


def _rotation(g: _Graph, combine) -> list:
    """RoPE: ``a*cos - b*sin`` / ``a*sin + b*cos`` with constant tables where cos^2 + sin^2 = 1."""
    muls, tables = [], []
    for i in combine.input:
        m = g.producer.get(i)
        if m is None or m.op_type != "Mul":
            return []
        consts = [g.constant(x) for x in m.input if g.is_constant(x)]
        if len(consts) != 1 or consts[0].ndim == 0 or consts[0].dtype.kind != "f":
            return []
        muls.append(m)
        tables.append(consts[0].astype(np.float64))
    a, b = tables
    if a.shape != b.shape or np.abs(a).max() > 1 + 1e-6 or not np.allclose(a * a + b * b, 1.0, atol=1e-4):
        return []
    return [*muls, combine]


def fp32_nodes(model) -> list[Fp32Node]:
    """The nodes of ``model`` (an ``onnx.ModelProto``) kept in float32 under fp16/bf16, in graph order."""
    g = _Graph(model.graph)
    picked: dict[int, Fp32Node] = {}

    def pick(nodes: Iterable, reason: str) -> None:
        for n in nodes:
            picked.setdefault(id(n), _node(n, reason))

    for n in g.nodes:
        reason = FP32_OPS.get(n.op_type)
        if reason:
            pick([n], reason)
        if n.op_type == "Sqrt":
            pick(_norm_chain(g, n), "norm")
        elif n.op_type in ("Sin", "Cos"):
            pick(_angle_chain(g, n), "sine")
        elif n.op_type in ("Sub", "Add") and len(n.input) == 2:
            pick(_rotation(g, n), "rope")
    order = {id(n): i for i, n in enumerate(g.nodes)}
    return [picked[k] for k in sorted(picked, key=order.__getitem__)]


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
    from sam2_ros.backends.contract import BATCH, POINTS

    if max_objects < 1 or max_points < 1:
        raise ValueError(f"--max-objects and --max-points must be >= 1, got {max_objects} and {max_points}")
    ranges = {BATCH: (1, min(4, max_objects), max_objects), POINTS: (1, min(2, max_points), max_points)}
    profile = {}
    for name, dims in graph_dims(model).items():
        unknown = [d for d in dims if isinstance(d, str) and d not in ranges or d == 0]
        if unknown:
            raise ValueError(f"input '{name}' has dynamic dimensions {unknown}; the export contract only has "
                             f"{BATCH} (objects) and {POINTS} (points): re-export the ONNX graphs")
        if not any(isinstance(d, str) for d in dims):
            continue
        shapes = [[ranges[d][k] if isinstance(d, str) else d for d in dims] for k in range(3)]
        profile[name] = {"min": shapes[0], "opt": shapes[1], "max": shapes[2]}
    return profile


def onnx_layer_names(metadata: str) -> set[str]:
    """ONNX node names in a TensorRT layer's metadata (``[ONNX Layer: name]``, fused layers have several)."""
    return set(_ONNX_LAYER.findall(metadata or ""))


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

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.fp32:
            counts[n.reason] = counts.get(n.reason, 0) + 1
        return counts


def plan_graph(graph: str, onnx_path: Path, precision: str, max_objects: int, max_points: int,
               onnx_sha256: str | None = None) -> GraphPlan:
    """Plan one graph; ``onnx_sha256`` when already verified (the ONNX manifest's), else computed."""
    import onnx

    from sam2_ros.utils.files import sha256_file

    model = onnx.load(str(onnx_path), load_external_data=False)  # structure and inline constants suffice
    return GraphPlan(graph, onnx_path, onnx_sha256 or sha256_file(onnx_path), graph_dims(model),
                     profile_shapes(model, max_objects, max_points),
                     tuple(fp32_nodes(model)) if precision != "fp32" else ())


def model_settings(manifest, plans: Mapping[str, GraphPlan]):
    """The runtime's :class:`ModelSettings` from the ONNX manifest, checked against the graphs themselves.

    ``manifest`` is :func:`sam2_ros.backends.manifest.read_manifest`'s ``Manifest``. The memory-attention
    graph must take the bank the manifest's settings imply, and the image encoder its image size.
    """
    from sam2_ros.backends.contract import slot_counts
    from sam2_ros.backends.graph import ModelSettings

    settings = ModelSettings(name=manifest.model, image_size=manifest.image_size,
                             max_cond_frames=manifest.max_cond_frames, num_maskmem=manifest.num_maskmem,
                             max_obj_ptrs=manifest.max_obj_ptrs, stability=manifest.stability,
                             multimask_points=manifest.multimask_points)
    slots, ptrs = slot_counts(settings.max_cond_frames, settings.num_maskmem, settings.max_obj_ptrs)
    dims = plans["memory_attention"].dims
    if dims["mem_feats"][0] != slots or dims["obj_ptrs"][0] != ptrs:
        raise ValueError(f"memory_attention.onnx takes {dims['mem_feats'][0]} memories and {dims['obj_ptrs'][0]} "
                         f"pointers, but the manifest (max_cond_frames={settings.max_cond_frames}, num_maskmem="
                         f"{settings.num_maskmem}, max_obj_ptrs={settings.max_obj_ptrs}) implies {slots} and "
                         f"{ptrs}: re-export the ONNX graphs")
    size = plans["image_encoder"].dims["image"][-1]
    if size != settings.image_size:
        raise ValueError(f"image_encoder.onnx takes {size}x{size} images, the manifest says {settings.image_size}")
    return settings


# ------------------------------------------------------------------------- trtexec
def trtexec_command(plan: GraphPlan, engine_path: Path, precision: str, workspace_gb: float,
                    timing_cache: Path | None) -> list[str]:
    """The trtexec call that builds the same engine as ``build_engines`` (TensorRT 10 flags)."""
    cmd = ["trtexec", f"--onnx={plan.onnx_path}", f"--saveEngine={engine_path}", "--skipInference",
           f"--memPoolSize=workspace:{int(workspace_gb * 1024)}"]
    if precision == "fp32":
        cmd.append("--noTF32")
    else:
        cmd.append(f"--{precision}")
    for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
        if plan.profile:
            cmd.append(flag + "=" + ",".join(f"{n}:{'x'.join(map(str, p[key]))}" for n, p in plan.profile.items()))
    if timing_cache is not None:
        cmd.append(f"--timingCacheFile={timing_cache}")
    names = [n.name for n in plan.fp32 if n.name]
    bad = [n for n in names if "," in n or ":" in n]
    if bad:
        raise ValueError(f"{plan.graph}: node names {bad[:3]} contain ',' or ':' and cannot be passed to "
                         f"--layerPrecisions; use `python -m export engines` instead of trtexec")
    if names:
        cmd += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in names),
                "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in names)]
    return cmd


def trtexec_script(plans: Mapping[str, GraphPlan], out_dir: Path, precision: str, workspace_gb: float,
                   timing_cache: Path | None, adopt_command: str) -> str:
    """A shell script with the five trtexec builds, then the command that writes engines.json."""
    folders = [out_dir] + ([timing_cache.parent] if timing_cache is not None else [])
    lines = ["#!/usr/bin/env bash",
             "# TensorRT 10 trtexec equivalent of `python -m export engines` (generated; see README, TensorRT).",
             "# Layers kept in float32 are named by their ONNX nodes, which the ONNX parser uses as layer names.",
             "# Relative paths are relative to the folder this script was generated from: run it from there.",
             "set -euo pipefail",
             "# JetPack installs trtexec outside PATH; TRTEXEC=/path/to/trtexec overrides both.",
             'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
             "mkdir -p " + " ".join(shlex.quote(str(f)) for f in folders)]
    for graph, plan in plans.items():
        cmd = trtexec_command(plan, out_dir / f"{graph}{ENGINE_SUFFIX}", precision, workspace_gb, timing_cache)
        lines.append(" \\\n    ".join(['"$TRTEXEC"'] + [shlex.quote(c) for c in cmd[1:]]))
    lines.append(adopt_command)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- progress
class BuildProgress:
    """TensorRT's nested build phases as tqdm bars; thread-safe; ``cancel()`` stops the build.

    The TensorRT ``IProgressMonitor`` (:func:`progress_monitor`) forwards to this, so the
    display logic runs and is tested without TensorRT.
    """

    def __init__(self, label: str, file=None) -> None:
        self.label, self.file = label, file
        self.cancelled = False
        self._bars: dict[str, Any] = {}
        self._depth: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, phase: str, parent: str | None, steps: int) -> None:
        from tqdm import tqdm

        with self._lock:
            depth = self._depth.get(parent, -1) + 1 if parent else 0
            self._depth[phase] = depth
            desc = f"{self.label}: {phase}" if depth == 0 else f"{'  ' * depth}{phase}"
            self._bars[phase] = tqdm(total=steps, desc=desc, position=depth, leave=depth == 0, file=self.file,
                                     dynamic_ncols=True)

    def step(self, phase: str, step: int) -> bool:
        """Record step ``step`` (0-based) of ``phase`` as done; False asks TensorRT to stop."""
        with self._lock:
            bar = self._bars.get(phase)
            if bar is not None:
                bar.update(step + 1 - bar.n)
        return not self.cancelled

    def finish(self, phase: str) -> None:
        with self._lock:
            bar = self._bars.pop(phase, None)
            self._depth.pop(phase, None)
        if bar is not None:
            bar.close()

    def cancel(self) -> None:
        self.cancelled = True


def progress_monitor(trt, progress: BuildProgress):
    """A ``trt.IProgressMonitor`` driving ``progress``; Ctrl+C inside a callback cancels the build."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                progress.start(phase_name, parent_phase, num_steps)
            except KeyboardInterrupt:
                progress.cancel()

        def step_complete(self, phase_name, step):
            try:
                return progress.step(phase_name, step)
            except KeyboardInterrupt:
                progress.cancel()
                return False

        def phase_finish(self, phase_name):
            try:
                progress.finish(phase_name)
            except KeyboardInterrupt:
                progress.cancel()

    return Monitor()


# ---------------------------------------------------------------------------- build
class BuildError(RuntimeError):
    """An ONNX graph TensorRT cannot parse or build."""


def parser_error_report(graph: str, onnx_path: Path, errors: list[str]) -> str:
    """One readable message for the ONNX parser's errors."""
    listed = "\n".join(f"  {i + 1}. {e}" for i, e in enumerate(errors)) or "  (the parser reported no details)"
    return (f"TensorRT's ONNX parser rejected {onnx_path} ({graph}) with {len(errors)} error(s):\n{listed}\n"
            f"Check the graph with `python -m export check` or re-export it; run with --verbose for TensorRT's log.")


def constrain_fp32(trt, network, nodes: Iterable[Fp32Node]) -> list[str]:
    """Pin the TensorRT layers of ``nodes`` to float32 (precision and output types); their names.

    Layers are matched by the ONNX node names in their metadata (``[ONNX Layer: name]``), by
    name, or by an output tensor's name. Layers with non-float outputs (shape arithmetic) and
    constants are left alone: they have no float32 choice to make.
    """
    nodes = list(nodes)
    names = {n.name for n in nodes if n.name}
    outputs = {o for n in nodes for o in n.outputs}
    floats = (trt.DataType.FLOAT, trt.DataType.HALF, trt.DataType.BF16)
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (trt.LayerType.CONSTANT, trt.LayerType.SHAPE):
            continue
        outs = [layer.get_output(k) for k in range(layer.num_outputs)]
        matched = (onnx_layer_names(getattr(layer, "metadata", "")) | {layer.name}) & names or \
            any(t.name in outputs for t in outs)
        if not matched or not all(t.dtype in floats for t in outs):
            continue
        layer.precision = trt.DataType.FLOAT
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.DataType.FLOAT)
        pinned.append(layer.name)
    return pinned


def describe_engine(trt, runtime, blob: bytes, plan: GraphPlan) -> dict[str, Any]:
    """An engine's I/O as engines.json records it; deserialising also proves the plan loads here."""
    from sam2_ros.backends.tensorrt import torch_dtype

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


def _build_one(trt, builder, logger, plan: GraphPlan, precision: str, workspace_gb: float, cache,
               verbose: bool) -> tuple[bytes, list[str]]:
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx_path)):
        raise BuildError(parser_error_report(plan.graph, plan.onnx_path,
                                             [str(parser.get_error(i)) for i in range(parser.num_errors)]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.set_timing_cache(cache, False)
    pinned = []
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    else:
        config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.BF16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = constrain_fp32(trt, network, plan.fp32)
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
        raise BuildError(f"TensorRT could not build {plan.graph} from {plan.onnx_path} (see its log above; "
                         f"--verbose shows more; --workspace-gb raises the scratch memory limit)")
    return bytes(blob), pinned


def _check_build_env(trt, env: Mapping[str, Any], precision: str) -> None:
    if int(trt.__version__.split(".")[0]) != 10:
        raise BuildError(f"TensorRT {trt.__version__}: this builder needs TensorRT 10 (fp16/bf16 use weakly typed "
                         f"networks with per-layer fp32 constraints, which TensorRT 11 removed)")
    major = int(str(env["gpu"]["compute_capability"]).split(".")[0])
    if precision == "bf16" and major < 8:
        raise BuildError(f"--bf16 needs compute capability 8.0 or newer; {env['gpu']['name']} has "
                         f"{env['gpu']['compute_capability']}. Use --fp16")


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
        args = ["python", "-m", "export", "engines", "--onnx", str(self.onnx_dir), "--out", str(self.out),
                f"--{self.precision}", "--max-objects", str(self.max_objects), "--max-points", str(self.max_points),
                "--workspace-gb", str(self.workspace_gb), *cache, *extra]
        return " ".join(shlex.quote(a) for a in args)


def prepare(onnx_dir: Path | str, out_dir: Path | str | None = None, precision: str = "fp16", max_objects: int = 16,
            max_points: int = 8, workspace_gb: float = 4.0,
            timing_cache: Path | str | None = DEFAULT_TIMING_CACHE) -> Job:
    """Read (and verify) the ONNX export and plan every graph. No TensorRT needed."""
    from sam2_ros.backends.contract import GRAPH_NAMES
    from sam2_ros.backends.manifest import read_manifest

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_dir = Path(onnx_dir)
    manifest = read_manifest(onnx_dir)  # verifies every file's SHA-256
    missing = [g for g in GRAPH_NAMES if g not in manifest.graphs]
    if missing:
        raise ValueError(f"{onnx_dir} has no graphs {missing}; re-export with `python -m export onnx`")
    plans = {g: plan_graph(g, onnx_dir / manifest.graphs[g].file, precision, max_objects, max_points,
                           manifest.graphs[g].sha256) for g in GRAPH_NAMES}
    settings = model_settings(manifest, plans)
    default_out = Path("engines") / f"{settings.name}_{settings.image_size}_{precision}"
    out = Path(out_dir) if out_dir is not None else default_out
    return Job(onnx_dir, out, precision, max_objects, max_points, workspace_gb,
               None if timing_cache is None else Path(timing_cache), settings, plans,
               onnx_dir / manifest.constants.file, manifest.checkpoint_sha256)


def write_engines_manifest(job: Job, env: Mapping[str, Any], described: Mapping[str, dict],
                           pinned: Mapping[str, list[str]], tool: str) -> Path:
    """Copy the constants beside the engines and write ``engines.json`` (atomically, last)."""
    from sam2_ros.utils.files import atomic_write
    from sam2_ros.backends.tensorrt import ENGINES_FILE, FORMAT_VERSION
    from sam2_ros.utils.files import sha256_file

    constants = job.out / job.constants.name
    atomic_write(constants, job.constants.read_bytes())
    engines = {}
    for graph, plan in job.plans.items():
        path = job.engine_path(graph)
        engines[graph] = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                          "onnx_file": plan.onnx_path.name, "onnx_sha256": plan.onnx_sha256, **described[graph],
                          "fp32_layers": list(pinned[graph]), "fp32_reasons": plan.reasons()}
    manifest = {
        "format": FORMAT_VERSION, "tensorrt": env["tensorrt"], "gpu": dict(env["gpu"]), "cuda": dict(env["cuda"]),
        "model": job.settings.as_dict(), "checkpoint_sha256": job.checkpoint_sha256,
        "build": {"tool": tool, "onnx_dir": str(job.onnx_dir.resolve()), "out": str(job.out),
                  "precision": job.precision, "max_objects": job.max_objects, "max_points": job.max_points,
                  "workspace_gb": job.workspace_gb,
                  "timing_cache": None if job.timing_cache is None else str(job.timing_cache),
                  "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
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
        print(f"warning: timing cache {path} was made for another GPU or TensorRT version; starting a new one",
              file=sys.stderr)
        cache = config.create_timing_cache(b"")
    return cache


def build_engines(onnx_dir: Path | str, out_dir: Path | str | None = None, precision: str = "fp16",
                  max_objects: int = 16, max_points: int = 8, workspace_gb: float = 4.0,
                  timing_cache: Path | str | None = DEFAULT_TIMING_CACHE, verbose: bool = False) -> Path:
    """Build the five engines from ``onnx_dir`` into ``out_dir``; returns the engines.json path.

    ``timing_cache``: loaded when the file exists, saved (atomically) after the builds, shared
    by all five; None builds without one. ``verbose``: TensorRT's log instead of progress bars.
    """
    from sam2_ros.utils.files import atomic_write
    from sam2_ros.backends.tensorrt import ENGINES_FILE, import_tensorrt, runtime_environment

    job = prepare(onnx_dir, out_dir, precision, max_objects, max_points, workspace_gb, timing_cache)
    trt = import_tensorrt()
    env = runtime_environment()
    _check_build_env(trt, env, precision)
    job.out.mkdir(parents=True, exist_ok=True)
    (job.out / ENGINES_FILE).unlink(missing_ok=True)  # a half-rebuilt folder must not pass for a complete one
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    runtime = trt.Runtime(logger)
    cache = _load_timing_cache(builder, job.timing_cache)
    described, pinned = {}, {}
    for graph, plan in job.plans.items():
        blob, pinned[graph] = _build_one(trt, builder, logger, plan, precision, workspace_gb, cache, verbose)
        described[graph] = describe_engine(trt, runtime, blob, plan)
        atomic_write(job.engine_path(graph), blob)
        print(f"{graph}: {len(blob) / 2**20:.1f} MiB, {len(pinned[graph])} layers pinned to fp32", file=sys.stderr)
    if job.timing_cache is not None:
        job.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(job.timing_cache, bytes(cache.serialize()))
    return write_engines_manifest(job, env, described, pinned, "python -m export engines")


def adopt_engines(onnx_dir: Path | str, out_dir: Path | str | None = None, precision: str = "fp16",
                  max_objects: int = 16, max_points: int = 8, workspace_gb: float = 4.0,
                  timing_cache: Path | str | None = DEFAULT_TIMING_CACHE) -> Path:
    """Write engines.json for the engines the generated trtexec script built in ``out_dir``."""
    from sam2_ros.backends.tensorrt import import_tensorrt, runtime_environment

    job = prepare(onnx_dir, out_dir, precision, max_objects, max_points, workspace_gb, timing_cache)
    trt = import_tensorrt()
    env = runtime_environment()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    described, pinned = {}, {}
    for graph, plan in job.plans.items():
        path = job.engine_path(graph)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run {job.out / 'trtexec.sh'} first")
        described[graph] = describe_engine(trt, runtime, path.read_bytes(), plan)
        pinned[graph] = [n.name for n in plan.fp32 if n.name]  # what trtexec was told to pin
    return write_engines_manifest(job, env, described, pinned, "trtexec")


def write_trtexec_script(onnx_dir: Path | str, out_dir: Path | str | None = None, precision: str = "fp16",
                         max_objects: int = 16, max_points: int = 8, workspace_gb: float = 4.0,
                         timing_cache: Path | str | None = DEFAULT_TIMING_CACHE) -> Path:
    """``out_dir/trtexec.sh``: the five trtexec builds, then ``--adopt``. No TensorRT needed."""
    from sam2_ros.utils.files import atomic_write

    job = prepare(onnx_dir, out_dir, precision, max_objects, max_points, workspace_gb, timing_cache)
    job.out.mkdir(parents=True, exist_ok=True)
    path = job.out / "trtexec.sh"
    atomic_write(path, trtexec_script(job.plans, job.out, precision, workspace_gb, job.timing_cache,
                                      job.command("--adopt")).encode())
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------------------ CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``engines`` on ``python -m export``'s subcommands."""
    p = subparsers.add_parser("engines", help="build TensorRT engines from the exported ONNX graphs",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", type=Path, required=True, metavar="DIR", help="folder written by `python -m export onnx`")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="engine folder (default engines/<model>_<size>_<precision>/)")
    prec = p.add_mutually_exclusive_group()
    for name, text in (("fp16", "half precision, sensitive layers in fp32 (default)"),
                       ("bf16", "bfloat16, sensitive layers in fp32 (compute capability 8.0+)"),
                       ("fp32", "float32 without TF32: the reference engine")):
        prec.add_argument(f"--{name}", dest="precision", action="store_const", const=name, help=text)
    p.set_defaults(precision="fp16", func=run)
    p.add_argument("--max-objects", type=int, default=16, metavar="N", help="largest object batch (default 16)")
    p.add_argument("--max-points", type=int, default=8, metavar="N", help="most prompt points per object (default 8)")
    p.add_argument("--workspace-gb", type=float, default=4.0, metavar="N", help="builder scratch memory (default 4)")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--timing-cache", type=Path, default=DEFAULT_TIMING_CACHE, metavar="PATH",
                       help=f"reusable tactic timing cache (default {DEFAULT_TIMING_CACHE})")
    cache.add_argument("--no-timing-cache", dest="timing_cache", action="store_const", const=None,
                       help="build without a timing cache")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--trtexec", action="store_true",
                      help="write OUT/trtexec.sh with the equivalent trtexec builds instead (no TensorRT needed)")
    mode.add_argument("--adopt", action="store_true",
                      help="write engines.json for engines trtexec.sh built in OUT")
    p.add_argument("--verbose", action="store_true", help="TensorRT's verbose log instead of progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    """``python -m export engines``: build (default), ``--trtexec`` script, or ``--adopt`` trtexec's engines."""
    common = dict(onnx_dir=args.onnx, out_dir=args.out, precision=args.precision, max_objects=args.max_objects,
                  max_points=args.max_points, workspace_gb=args.workspace_gb, timing_cache=args.timing_cache)
    try:
        if args.trtexec:
            print(f"wrote {write_trtexec_script(**common)}")
        elif args.adopt:
            print(f"wrote {adopt_engines(**common)}")
        else:
            print(f"wrote {build_engines(**common, verbose=args.verbose)}")
    except ImportError as exc:  # no TensorRT / cuda-python here: the install hint, not a traceback
        print(f"python -m export engines: {exc}", file=sys.stderr)
        return 2
    return 0

