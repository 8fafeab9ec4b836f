"""TensorRT engine building and runtime, as far as they can be checked without a GPU.

What could not be executed on our CI machines: anything TensorRT does (no GPU, no
TensorRT can be installed there). The ``tensorrt``-marked tests at the end build real
engines and run the tracker on them; they skip cleanly without TensorRT and CUDA.

What runs everywhere (CPU, no TensorRT):

* every decision made before TensorRT is called, on ONNX graphs exported here from a
  small torch module: which nodes stay in float32 (and which do not), optimisation
  profiles from the command line, the trtexec script, the build progress display;
* the engines.json checks: wrong GPU name, compute capability or TensorRT version; a
  corrupt or missing engine; a truncated manifest;
* ``EngineRunner`` against a stand-in engine that reads and writes the bound addresses and,
  like TensorRT, refuses addresses off a 256-byte boundary; ``constrain_fp32`` against
  stand-in network layers; which planned nodes name a float layer (the one list both
  builders pin; tests/test_export_onnx.py checks it on the exported graphs);
* the version gates against stand-in ``tensorrt`` and cuda-python modules: TensorRT 11, and
  cuda-python 13 on a CUDA 12 driver, are refused with the pins setup.cfg installs;
* ``GraphBackend`` -- everything ``TensorRTBackend`` does around the engines -- driving the
  streaming tracker with the exported graphs' torch modules, against ``TorchBackend``.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import dataclasses
import importlib.util
import io
import json
import math
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from export import engines
from sam2_ros.backends import contract, trt_versions
from sam2_ros.backends import graph as graphs_backend
from sam2_ros.backends import tensorrt as rt
from sam2_ros.model import build_sam2
from sam2_ros.utils.files import sha256_file

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
ENV = {
    "tensorrt": "10.3.0",
    "gpu": {"name": "Orin", "compute_capability": "8.7"},
    "cuda": {"driver": "12.2", "runtime": "12.2"},
}


# ----------------------------------------------------------------------- a small graph
class Tiny(nn.Module):
    """Each pattern the precision plan looks for, beside ops it must leave alone.

    LayerNorm (one ONNX op), SAM's channel LayerNorm2d (mean/var/sqrt/div), a softmax, a
    RoPE rotation with cos/sin tables, a sine encoding of a per-object scalar and a random
    Fourier encoding of points (``N`` axis). ``table_scale`` != 1 breaks cos^2 + sin^2 = 1.
    """

    def __init__(self, table_scale: float = 1.0) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(8)
        self.qkv = nn.Linear(8, 24)
        self.conv = nn.Conv2d(8, 8, 1)
        angles = torch.arange(16).float()[:, None] * torch.tensor([1.0, 0.1, 0.01, 0.001])
        self.register_buffer("cos", angles.cos() * table_scale, persistent=False)
        self.register_buffer("sin", angles.sin() * table_scale, persistent=False)
        self.register_buffer("gauss", torch.randn(2, 4), persistent=False)

    def forward(self, x, t, points):
        b = x.shape[0]
        y = self.ln(x)
        pairs = y.reshape(b, 16, 4, 2)
        x0, x1 = pairs[..., 0], pairs[..., 1]
        y = torch.stack((x0 * self.cos - x1 * self.sin, x0 * self.sin + x1 * self.cos), -1).flatten(-2)
        q, k, v = self.qkv(y).split(8, dim=-1)
        y = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        img = self.conv(y.transpose(1, 2).reshape(b, 8, 4, 4))
        mean = img.mean(1, keepdim=True)
        var = (img - mean).pow(2).mean(1, keepdim=True)
        img = torch.relu((img - mean) / torch.sqrt(var + 1e-6))
        freqs = 10000 ** (torch.arange(4).float() / 4)
        angle = (t / 15).unsqueeze(-1) / freqs
        pe = torch.cat([angle.sin(), angle.cos()], -1)
        proj = ((points / 64) * 2 - 1) @ self.gauss * (2 * math.pi)
        pt = torch.cat([proj.sin(), proj.cos()], -1).mean(1)
        return (img.flatten(2).transpose(1, 2) + pe[:, None] + pt[:, None] - 1.0) * 2.0


def export_tiny(path: Path, table_scale: float = 1.0) -> Path:
    """The TorchScript exporter, as ``export/graphs.py`` uses it (its deprecation notice silenced)."""
    torch.manual_seed(0)
    module = Tiny(table_scale).eval()  # seed 0 then Tiny(): the GPU test rebuilds the same weights
    args = (torch.randn(2, 16, 8), torch.rand(2) * 10, torch.rand(2, 3, 2) * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=["x", "t", "points"],
            output_names=["y"],
            dynamic_axes={"x": {0: "B"}, "t": {0: "B"}, "points": {0: "B", 1: "N"}, "y": {0: "B"}},
            opset_version=17,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, onnx.ModelProto]:
    path = export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx")
    return path, onnx.load(str(path))


def pinned(model: onnx.ModelProto) -> dict[str, str]:
    return {n.name: n.reason for n in engines.fp32_nodes(model)}


# ------------------------------------------------------------------ precision planning
def test_precision_plan_pins_norms_softmax_sines_and_rope(tiny):
    _, model = tiny
    plan = pinned(model)
    ops = {n.name: n.op_type for n in model.graph.node}
    by_reason = {}
    for name, reason in plan.items():
        by_reason.setdefault(reason, []).append(ops[name])
    # Every op of these kinds is pinned, whatever its neighbours.
    for n in model.graph.node:
        if n.op_type in ("LayerNormalization", "Softmax", "Sin", "Cos"):
            assert n.name in plan, n.name
    assert sorted(by_reason["norm"]) == sorted(
        ["LayerNormalization", "ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div"]
    )
    assert by_reason["softmax"] == ["Softmax"]
    assert sorted(by_reason["rope"]) == sorted(["Mul"] * 4 + ["Sub", "Add"])
    # Sine encodings: sin/cos and the arithmetic building their angles (t/15/freqs; points
    # scaled, projected and multiplied by 2 pi).
    assert sorted(by_reason["sine"]) == sorted(
        ["Sin", "Cos"] * 2 + ["Div", "Div", "Div", "Mul", "Sub", "MatMul", "Mul"]
    )


def test_precision_plan_leaves_ordinary_ops_in_reduced_precision(tiny):
    _, model = tiny
    plan = pinned(model)
    free = [n for n in model.graph.node if n.name not in plan]
    kinds = {n.op_type for n in free}
    assert {"MatMul", "Conv", "Relu"} <= kinds  # projections, convolutions, activations
    # The output's "- 1.0" and "* 2.0" are ordinary arithmetic, not part of any pattern.
    out = next(n for n in model.graph.node if "y" in n.output)
    assert out.op_type == "Mul" and out.name not in plan
    assert sum(1 for n in model.graph.node if n.op_type == "MatMul" and n.name in plan) == 1  # only the Fourier one


def test_rope_needs_true_cos_sin_tables(tmp_path):
    """Products with constants whose squares do not sum to one are not a rotation."""
    model = onnx.load(str(export_tiny(tmp_path / "scaled.onnx", table_scale=0.5)))
    assert "rope" not in set(pinned(model).values())


def test_fp32_build_pins_nothing(tiny):
    path, _ = tiny
    assert engines.plan_graph("tiny", path, "fp32", 4, 4).fp32 == ()
    assert engines.plan_graph("tiny", path, "fp16", 4, 4).reasons() == {"norm": 8, "rope": 6, "softmax": 1, "sine": 11}


@pytest.mark.parametrize("max_objects,max_points,opt_b,opt_n", [(16, 8, 4, 2), (2, 1, 2, 1), (1, 3, 1, 2)])
def test_profiles_from_the_command_line(tiny, max_objects, max_points, opt_b, opt_n):
    _, model = tiny
    prof = engines.profile_shapes(model, max_objects, max_points)
    assert prof["x"] == {"min": [1, 16, 8], "opt": [opt_b, 16, 8], "max": [max_objects, 16, 8]}
    assert prof["t"] == {"min": [1], "opt": [opt_b], "max": [max_objects]}
    assert prof["points"] == {"min": [1, 1, 2], "opt": [opt_b, opt_n, 2], "max": [max_objects, max_points, 2]}


def test_profile_errors(tiny):
    _, model = tiny
    with pytest.raises(ValueError, match="must be >= 1"):
        engines.profile_shapes(model, 0, 8)
    odd = onnx.ModelProto()
    odd.CopyFrom(model)
    odd.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "T"
    with pytest.raises(ValueError, match=r"input 'x' has dynamic dimensions \['T'\]"):
        engines.profile_shapes(odd, 4, 4)


def test_static_graphs_get_no_profile():
    spec = contract.graph_specs(64, 2)["image_encoder"]
    assert engines.profile_shapes(contract_model(spec), 16, 8) == {}


def test_trtexec_command(tiny, tmp_path):
    path, _ = tiny
    plan = engines.plan_graph("tiny", path, "fp16", 16, 8)
    cmd = engines.trtexec_command(plan, tmp_path / "tiny.engine", "fp16", 2.0, tmp_path / "timing.cache")
    assert cmd[:4] == ["trtexec", f"--onnx={path}", f"--saveEngine={tmp_path / 'tiny.engine'}", "--skipInference"]
    assert "--fp16" in cmd and "--memPoolSize=workspace:2048" in cmd
    assert f"--timingCacheFile={tmp_path / 'timing.cache'}" in cmd
    assert "--minShapes=x:1x16x8,t:1,points:1x1x2" in cmd
    assert "--optShapes=x:4x16x8,t:4,points:4x2x2" in cmd
    assert "--maxShapes=x:16x16x8,t:16,points:16x8x2" in cmd
    assert "--precisionConstraints=obey" in cmd
    layers = next(c for c in cmd if c.startswith("--layerPrecisions=")).split("=", 1)[1].split(",")
    assert layers == [f"{n.name}:fp32" for n in plan.fp32]
    fp32 = engines.trtexec_command(engines.plan_graph("tiny", path, "fp32", 16, 8), tmp_path / "e", "fp32", 1, None)
    assert "--noTF32" in fp32 and not any(c.startswith(("--layerPrecisions", "--fp16", "--timingCache")) for c in fp32)


# --------------------------------------------------------- graphs of the export contract
ONNX_TYPES = {
    "float32": TensorProto.FLOAT,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
}


def contract_model(spec: contract.GraphSpec) -> onnx.ModelProto:
    """A graph with the contract's inputs and outputs (no body: planning reads I/O and nodes only)."""

    def info(t):
        return helper.make_tensor_value_info(t.name, ONNX_TYPES[t.dtype], list(t.shape))

    graph = helper.make_graph([], spec.name, [info(t) for t in spec.inputs], [info(t) for t in spec.outputs])
    return helper.make_model(graph)


@pytest.fixture
def onnx_dir(tmp_path) -> Path:
    """An export folder per the contract, with a genuine manifest.json (graphs without bodies)."""
    from sam2_ros.backends.manifest import FileEntry, Manifest, sha256_file, write_manifest

    folder = tmp_path / "onnx"
    folder.mkdir()
    entries = {}
    for spec in contract.graph_specs(64, 2).values():
        onnx.save(contract_model(spec), str(folder / spec.file))
        io_ = tuple(t.as_dict() for t in spec.inputs), tuple(t.as_dict() for t in spec.outputs)
        entries[spec.name] = FileEntry(spec.file, sha256_file(folder / spec.file), *io_)
    np.savez(
        folder / contract.CONSTANTS_FILE,
        no_obj_ptr=np.ones((1, 256), np.float32),
        no_mem_embed=np.zeros((1, 1, 256), np.float32),
    )
    write_manifest(
        folder,
        Manifest(
            model="sam2.1_hiera_t",
            checkpoint_sha256="random",
            image_size=64,
            max_cond_frames=2,
            opset=17,
            num_maskmem=7,
            max_obj_ptrs=16,
            stability=(0.05, 0.98),
            multimask_points=(0, 1),
            graphs=entries,
            constants=FileEntry(contract.CONSTANTS_FILE, sha256_file(folder / contract.CONSTANTS_FILE)),
        ),
    )
    return folder


def test_settings_come_from_the_manifest_and_match_the_graphs(onnx_dir):
    from sam2_ros.backends.manifest import read_manifest

    job = engines.prepare(onnx_dir)
    assert job.out == Path("engines/sam2.1_hiera_t_64_fp16") and job.timing_cache == engines.DEFAULT_TIMING_CACHE
    settings = job.settings
    assert (settings.image_size, settings.max_cond_frames, settings.memory_slots) == (64, 2, (8, 17))
    assert settings.stability == (0.05, 0.98) and settings.multimask_points == (0, 1)
    assert graphs_backend.ModelSettings.from_dict(json.loads(json.dumps(settings.as_dict()))) == settings
    wrong = dataclasses.replace(read_manifest(onnx_dir), max_cond_frames=4)  # the graphs were exported for 2
    with pytest.raises(ValueError, match="takes 8 memories and 17 pointers.*implies 10 and 19"):
        engines.model_settings(wrong, job.plans)


def test_a_modified_onnx_graph_is_refused(onnx_dir):
    with open(onnx_dir / "mask_decoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(RuntimeError, match="mask_decoder.onnx was modified after export"):
        engines.prepare(onnx_dir)


def test_trtexec_script_via_the_cli(onnx_dir, tmp_path):
    parser = argparse.ArgumentParser()
    engines.add_parser(parser.add_subparsers())
    out = tmp_path / "engines"
    args = parser.parse_args(
        [
            "engines",
            "--onnx",
            str(onnx_dir),
            "--out",
            str(out),
            "--bf16",
            "--max-objects",
            "4",
            "--no-timing-cache",
            "--trtexec",
        ]
    )
    assert (args.precision, args.timing_cache, args.max_points) == ("bf16", None, 8)
    assert args.func(args) == 0
    script = (out / "trtexec.sh").read_text()
    for graph in contract.GRAPH_NAMES:
        assert f"--onnx={onnx_dir / graph}.onnx" in script and f"--saveEngine={out / graph}.engine" in script
    assert sum(line.startswith('"$TRTEXEC" ') for line in script.splitlines()) == 5
    assert script.count("--bf16") == 6 and "--timingCacheFile" not in script  # five builds and the adopt step
    assert "--maxShapes=pix_feat:4x256x4x4,high_res_0:4x32x16x16,high_res_1:4x64x8x8,point_coords:4x8x2," in script
    assert script.rstrip().endswith("--no-timing-cache --adopt")


# --------------------------------------------------------------------- engines.json
@pytest.fixture
def engine_dir(onnx_dir, tmp_path) -> Path:
    """A complete engine folder as the builder writes it (engine files are stand-in bytes)."""
    job = engines.prepare(onnx_dir, tmp_path / "engines", timing_cache=None)
    job.out.mkdir()
    described = {}
    for graph, plan in job.plans.items():
        job.engine_path(graph).write_bytes(f"plan of {graph}".encode())
        described[graph] = {
            "inputs": [{"name": n, "shape": d, "dtype": "float32"} for n, d in plan.dims.items()],
            "outputs": [],
        }
    engines.write_engines_manifest(job, ENV, described, {g: [] for g in job.plans}, "python -m export engines")
    return job.out


def test_a_complete_engine_folder_passes(engine_dir):
    manifest = rt.read_engines_manifest(engine_dir)
    rt.verify_engine_files(manifest, engine_dir)
    rt.check_manifest(manifest, ENV, engine_dir)
    assert manifest["checkpoint_sha256"] == "random" and manifest["model"]["name"] == "sam2.1_hiera_t"
    assert manifest["engines"]["mask_decoder"]["onnx_sha256"] == sha256_file(
        Path(manifest["build"]["onnx_dir"]) / "mask_decoder.onnx"
    )


REBUILD = "python -m export engines --onnx {onnx} --out {out} --fp16 --max-objects 16 --max-points 8"


@pytest.mark.parametrize(
    "field,value,says",
    [
        ("name", "NVIDIA GeForce RTX 4090", "built for the GPU 'Orin' but this machine has 'NVIDIA GeForce RTX 4090'"),
        ("compute_capability", "8.6", "built for compute capability 8.7 but this GPU has compute capability 8.6"),
        ("tensorrt", "10.8.0", "built with TensorRT 10.3.0 but TensorRT 10.8.0 is installed here"),
    ],
)
def test_engines_for_another_gpu_or_tensorrt_are_refused(engine_dir, onnx_dir, field, value, says):
    manifest = rt.read_engines_manifest(engine_dir)
    env = json.loads(json.dumps(ENV))
    (env if field == "tensorrt" else env["gpu"])[field] = value
    with pytest.raises(rt.EngineError) as err:
        rt.check_manifest(manifest, env, engine_dir)
    msg = str(err.value)
    assert says in msg
    assert REBUILD.format(onnx=onnx_dir.resolve(), out=engine_dir) in msg


def test_a_modified_engine_is_refused_before_tensorrt_sees_it(engine_dir):
    (engine_dir / "memory_encoder.engine").write_bytes(b"plan of memory_encoder, edited")
    with pytest.raises(
        rt.EngineError,
        match=r"memory_encoder.engine \(memory_encoder\) is corrupt or was modified: "
        r"its SHA-256 is [0-9a-f]{64}, engines.json records [0-9a-f]{64}",
    ):
        rt.TensorRTBackend(engine_dir, "cuda")  # fails on the hash, before importing TensorRT


def test_missing_files_are_named(engine_dir):
    (engine_dir / "image_encoder.engine").unlink()
    with pytest.raises(rt.EngineError, match=r"image_encoder.engine \(image_encoder\) is missing. Rebuild: python -m"):
        rt.verify_engine_files(rt.read_engines_manifest(engine_dir), engine_dir)
    (engine_dir / rt.ENGINES_FILE).unlink()
    with pytest.raises(
        rt.EngineError,
        match="engines.json not found: .* holds no TensorRT engines; build engines with `python -m export engines",
    ):
        rt.read_engines_manifest(engine_dir)


def test_truncated_or_foreign_manifests_are_refused(engine_dir):
    path = engine_dir / rt.ENGINES_FILE
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(rt.EngineError, match="engines.json is not valid JSON .* truncated or damaged"):
        rt.read_engines_manifest(engine_dir)
    path.write_text("[1, 2]")
    with pytest.raises(rt.EngineError, match="must hold a JSON object, got list"):
        rt.read_engines_manifest(engine_dir)
    manifest = json.loads(text)
    del manifest["gpu"], manifest["engines"]["mask_downsample"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(rt.EngineError, match=r"lacks or has malformed fields \['gpu'\]"):
        rt.read_engines_manifest(engine_dir)
    manifest["gpu"] = ENV["gpu"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(rt.EngineError, match=r"lists no engine for \['mask_downsample'\]"):
        rt.read_engines_manifest(engine_dir)


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the message shown where TensorRT is missing")
def test_without_tensorrt_the_backend_and_builder_say_how_to_install_it(engine_dir, onnx_dir, tmp_path, capsys):
    from export.__main__ import main

    with pytest.raises(ImportError, match=r"pip install -e \.\[tensorrt\]"):
        rt.TensorRTBackend.from_dir(engine_dir, "cuda")
    assert main(["engines", "--onnx", str(onnx_dir), "--out", str(tmp_path / "e"), "--no-timing-cache"]) == 2
    assert "TensorRT's Python package (10.x): `pip install -e .[tensorrt]`" in capsys.readouterr().err


# -------------------------------------------------------------- dependency versions
def fake_cuda_python(monkeypatch, version: str | None, layout: str = "bindings") -> types.ModuleType:
    """Install a stand-in cuda-python: ``cuda.bindings.runtime`` (12.6.1+) or ``cuda.cudart`` (older)."""
    cudart = types.ModuleType("runtime")
    cudart.cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    cudart.cudaDriverGetVersion = lambda: (0, 12020)
    cudart.cudaRuntimeGetVersion = lambda: (0, 12060)
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    if layout == "bindings":
        bindings = types.ModuleType("cuda.bindings")
        bindings.__path__, bindings.__version__, bindings.runtime = [], version, cudart
        cuda.bindings = bindings
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    else:
        cuda.cudart = cudart
        monkeypatch.setitem(sys.modules, "cuda.bindings", None)  # the old layout has no cuda.bindings
        monkeypatch.setitem(sys.modules, "cuda.cudart", cudart)
    return cudart


@pytest.mark.parametrize("version,ok", [("10.3.0", True), ("10.13.3.9", True), ("11.0.0.1", False), ("8.6.1", False)])
def test_tensorrt_version_gate(monkeypatch, version, ok):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))
    if ok:
        assert rt.import_tensorrt().__version__ == version
        return
    with pytest.raises(
        ImportError,
        match=rf"TensorRT {version} is installed; sam2_ros needs TensorRT 10.*"
        r"`pip install 'tensorrt>=10.0,<11'`",
    ) as err:
        rt.import_tensorrt()
    if version.startswith("11"):
        assert "removed the weakly typed fp16/bf16 path" in str(err.value)


@pytest.mark.parametrize(
    "version,layout,driver,ok",
    [
        ("12.6.2", "bindings", 12020, True),  # JetPack 6.0 driver (CUDA 12.2), new module layout
        ("12.4.0", "cudart", 12020, True),  # the layout before 12.6.1
        ("13.0.3", "bindings", 13000, True),  # a CUDA 13 driver runs cuda-python 13
        ("13.0.3", "bindings", 12060, False),  # what `cuda-python>=12.0` installed on JetPack 6
        ("13.0.3", "bindings", None, True),  # driver unknown: nothing to compare
    ],
)
def test_cuda_python_version_gate(monkeypatch, version, layout, driver, ok):
    cudart = fake_cuda_python(monkeypatch, version, layout)
    monkeypatch.setattr(trt_versions, "cuda_driver_version", lambda: driver)
    if ok:
        assert trt_versions._import_cudart() is cudart
        assert trt_versions._cuda_versions() == {"driver": "12.2", "runtime": "12.6"}
        return
    msg = (
        r"cuda-python 13.0.3 is installed, but this machine's CUDA driver supports CUDA 12.6: cuda-python 13 "
        r"needs a CUDA 13 driver \(JetPack 6 is CUDA 12\). Install `pip install 'cuda-python>=12.0,<13'`"
    )
    with pytest.raises(trt_versions.CudaPythonVersionError, match=msg):
        trt_versions._import_cudart()
    with pytest.raises(trt_versions.CudaPythonVersionError, match=msg):  # what runtime_environment() asks first
        trt_versions._cuda_versions()


def test_setup_cfg_pins_what_the_version_gates_name():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    extra = cfg["options.extras_require"]["tensorrt"].split()
    assert (
        extra
        == [trt_versions.TENSORRT_PIN, trt_versions.CUDA_PYTHON_PIN]
        == ["tensorrt>=10.0,<11", "cuda-python>=12.0,<13"]
    )


def test_profile_limits_name_the_flag_to_rebuild_with():
    dims, prof = ["B", "N", 2], {"min": [1, 1, 2], "max": [16, 8, 2]}
    rt.check_profile("mask_decoder", "point_coords", (3, 8, 2), dims, prof)
    with pytest.raises(
        ValueError,
        match=r"axis 1 \(N: prompt points per object; rebuild with a larger --max-points\) "
        r"is 9, allowed 1..8",
    ):
        rt.check_profile("mask_decoder", "point_coords", (3, 9, 2), dims, prof)
    with pytest.raises(ValueError, match=r"axis 0 \(B: objects per call; rebuild with a larger --max-objects\) is 17"):
        rt.check_profile("mask_decoder", "point_coords", (17, 1, 2), dims, prof)


# ---------------------------------------------------------- TensorRT API stand-ins
class FakeTrt:
    """The few ``tensorrt`` names the code uses, with the TensorRT 10 Python spellings."""

    class TensorIOMode:
        INPUT, OUTPUT = "INPUT", "OUTPUT"

    class DataType:
        FLOAT, HALF, BF16, INT32, INT64, BOOL = (
            types.SimpleNamespace(name=n) for n in ("FLOAT", "HALF", "BF16", "INT32", "INT64", "BOOL")
        )

    class LayerType:
        CONSTANT, SHAPE, ELEMENTWISE, NORMALIZATION = "CONSTANT", "SHAPE", "ELEMENTWISE", "NORMALIZATION"


class FakeEngine:
    """``y = 2 x + flag`` over a dynamic batch (profile 1..4), reading and writing bound addresses."""

    io = {"x": ("INPUT", "FLOAT", (-1, 3)), "flag": ("INPUT", "BOOL", (-1,)), "y": ("OUTPUT", "FLOAT", (-1, 3))}

    def __init__(self) -> None:
        self.num_io_tensors = len(self.io)
        self.calls = {"set_input_shape": 0, "get_tensor_shape": 0}

    def get_tensor_name(self, i):
        return list(self.io)[i]

    def get_tensor_mode(self, name):
        return self.io[name][0]

    def get_tensor_dtype(self, name):
        return getattr(FakeTrt.DataType, self.io[name][1])

    def get_tensor_shape(self, name):
        return self.io[name][2]

    def get_tensor_profile_shape(self, name, profile):
        assert profile == 0
        return [(1, *self.io[name][2][1:]), (2, *self.io[name][2][1:]), (4, *self.io[name][2][1:])]

    def is_shape_inference_io(self, name):
        return False

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.shapes, self.addresses, self.streams = engine, {}, {}, []

    def set_input_shape(self, name, shape):
        self.engine.calls["set_input_shape"] += 1
        self.shapes[name] = tuple(shape)
        return 1 <= shape[0] <= 4

    def get_tensor_shape(self, name):
        self.engine.calls["get_tensor_shape"] += 1
        return (self.shapes["x"][0], 3)

    def set_tensor_address(self, name, ptr):
        """Like TensorRT 10: False (and nothing bound) for an unknown name or an address off 256 bytes."""
        if name not in self.engine.io or ptr % 256:
            return False
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        self.streams.append(stream_handle)
        b = self.shapes["x"][0]
        x = np.ctypeslib.as_array((ctypes.c_float * (b * 3)).from_address(self.addresses["x"]))
        flag = np.ctypeslib.as_array((ctypes.c_uint8 * b).from_address(self.addresses["flag"]))
        y = np.ctypeslib.as_array((ctypes.c_float * (b * 3)).from_address(self.addresses["y"]))
        y[:] = 2 * x + np.repeat(flag, 3)
        return True


def test_engine_runner_binds_converted_inputs_and_fresh_outputs():
    engine = FakeEngine()
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda blob: engine if blob == b"plan" else None)
    runner = rt.EngineRunner(
        FakeTrt, runtime, "double", b"plan", 1234, torch.device("cpu"), {"x": ["B", 3], "flag": ["B"]}
    )
    assert runner.inputs == ["x", "flag"] and runner.outputs == ["y"]
    assert runner.profiles["x"] == {"min": [1, 3], "opt": [2, 3], "max": [4, 3]}
    x = torch.arange(6, dtype=torch.float64).reshape(3, 2).T  # float64, not contiguous: converted for the engine
    flag = torch.tensor([True, False])
    first = runner(x=x, flag=flag)["y"]
    assert first.dtype == torch.float32 and torch.equal(first, (2 * x + flag[:, None]).float())
    second = runner(x=x + 1, flag=~flag)["y"]  # same shapes: no new shape, a new output tensor
    assert engine.calls == {"set_input_shape": 2, "get_tensor_shape": 1}
    assert second.data_ptr() != first.data_ptr() and torch.equal(first, (2 * x + flag[:, None]).float())
    runner(x=torch.zeros(4, 3), flag=torch.ones(4, dtype=torch.bool))
    assert engine.calls == {"set_input_shape": 4, "get_tensor_shape": 2}
    assert runner.context.streams == [1234] * 3
    with pytest.raises(ValueError, match=r"double: input 'x' has shape \(5, 3\).*axis 0 \(B: objects per call"):
        runner(x=torch.zeros(5, 3), flag=torch.ones(5, dtype=torch.bool))
    with pytest.raises(rt.EngineError, match="could not deserialize the double engine"):
        rt.EngineRunner(FakeTrt, runtime, "double", b"junk", 0, torch.device("cpu"), {})


class FakeTensor(types.SimpleNamespace):
    pass


class FakeLayer:
    def __init__(self, name, kind="ELEMENTWISE", metadata="", outputs=(("out", "FLOAT"),)) -> None:
        self.name, self.type, self.metadata = name, kind, metadata
        self._outs = [FakeTensor(name=n, dtype=getattr(FakeTrt.DataType, d)) for n, d in outputs]
        self.num_outputs = len(self._outs)
        self.precision, self.output_types = None, {}

    def get_output(self, k):
        return self._outs[k]

    def set_output_type(self, k, dtype):
        self.output_types[k] = dtype


def test_constrain_fp32_pins_exactly_the_named_float_layers():
    """The builder matches names as trtexec's --layerPrecisions does: exactly, float layers only."""
    layers = [
        FakeLayer("/ln/LayerNormalization", "NORMALIZATION"),
        FakeLayer("/ln/LayerNormalization_1"),  # a second layer of the same node: another name
        FakeLayer("fused_17", "NORMALIZATION", "[ONNX Layer: /Softmax]"),  # metadata does not count
        FakeLayer("/Softmax"),
        FakeLayer("/shape/Mul", outputs=(("dims", "INT64"),)),  # named, but shape arithmetic
        FakeLayer("/table", "CONSTANT"),
        FakeLayer("/Mul"),  # not planned
    ]
    network = types.SimpleNamespace(num_layers=len(layers), get_layer=layers.__getitem__)
    names = ["/Softmax", "/ln/LayerNormalization", "/shape/Mul", "/table", "/absent"]
    assert engines.constrain_fp32(FakeTrt, network, names) == ["/ln/LayerNormalization", "/Softmax"]
    for layer in layers:
        pinned = layer.name in ("/ln/LayerNormalization", "/Softmax")
        assert (layer.precision is FakeTrt.DataType.FLOAT) == pinned, layer.name
        assert layer.output_types == ({0: FakeTrt.DataType.FLOAT} if pinned else {}), layer.name


def test_only_nodes_the_parser_turns_into_float_layers_of_their_name_are_pinned():
    """Planned nodes without a float layer of their own name are left out of the one list."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes = [
        helper.make_node("Constant", [], ["c"], name="const", value=helper.make_tensor("v", f, [3], [1, 2, 3])),
        helper.make_node("Sin", ["c"], ["sin_c"], name="sin_of_constant"),  # computes a constant
        helper.make_node("Sin", ["x"], ["sin_x"], name="sin_x"),
        helper.make_node("Mul", ["n", "n"], ["nn"], name="mul_int"),  # int64 arithmetic in a sine's angle
        helper.make_node("Cast", ["nn"], ["nn_f"], name="cast", to=f),
        helper.make_node("Sin", ["nn_f"], ["sin_n"], name="sin_n"),
        helper.make_node("Cos", ["x"], ["cos_x"]),  # unnamed
        helper.make_node("Softmax", ["x"], ["s1"], name="dup"),
        helper.make_node("Softmax", ["sin_x"], ["s2"], name="dup"),  # the parser would rename one of them
        helper.make_node("Sum", ["sin_c", "sin_x", "sin_n", "cos_x", "s1", "s2"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", f, [3]), helper.make_tensor_value_info("n", i64, [3])],
        [helper.make_tensor_value_info("y", f, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    planned = engines.fp32_nodes(model)
    assert {n.name for n in planned} == {"sin_of_constant", "sin_x", "mul_int", "sin_n", "", "dup"}
    with_constant = [*planned, engines.Fp32Node("const", "Constant", "sine", ("c",))]
    assert engines.pinned_layer_names(model, with_constant) == ("sin_x", "sin_n")


def test_engine_runner_checks_every_address_and_aligns_views():
    """A view starting off a 256-byte boundary is copied; an address TensorRT refuses is an error."""
    engine = FakeEngine()
    runtime = types.SimpleNamespace(deserialize_cuda_engine=lambda blob: engine)
    runner = rt.EngineRunner(
        FakeTrt, runtime, "double", b"plan", 0, torch.device("cpu"), {"x": ["B", 3], "flag": ["B"]}
    )
    base = rt.aligned_empty((70,), torch.float32, torch.device("cpu"))
    base.copy_(torch.arange(70.0))
    x = base[1:7].view(2, 3)  # starts 4 bytes past an aligned address
    assert x.data_ptr() % 256 == 4
    y = runner(x=x, flag=torch.tensor([True, False]))["y"]
    assert torch.equal(y, 2 * x + torch.tensor([[1.0], [0.0]]))
    assert all(ptr % 256 == 0 for ptr in runner.context.addresses.values())
    assert runner.context.addresses["x"] != x.data_ptr()  # bound to the aligned copy
    # Without the copy TensorRT would refuse the view; a refusal names the graph and tensor.
    with pytest.raises(
        rt.EngineError,
        match=r"double: TensorRT refused the address 0x[0-9a-f]+ of input 'x' "
        r"\(shape \(2, 3\), torch.float32, cpu\); addresses must be "
        r"256-byte aligned",
    ):
        runner._bind("input", "x", x)
    runner.context.set_tensor_address = lambda name, ptr: name != "y"
    with pytest.raises(rt.EngineError, match="refused the address .* of output 'y'"):
        runner(x=x, flag=torch.tensor([True, False]))


@pytest.mark.parametrize("dtype", [torch.bool, torch.float16, torch.float32, torch.int64])
def test_aligned_buffers(dtype):
    for shape in [(1,), (3, 5), (2, 1, 7)]:
        t = rt.aligned_empty(shape, dtype, torch.device("cpu"))
        assert t.shape == shape and t.dtype == dtype and t.is_contiguous() and t.data_ptr() % 256 == 0
    big = torch.zeros(64, dtype=dtype)
    view = big[3:9]
    assert rt.aligned(view).data_ptr() % 256 == 0 and torch.equal(rt.aligned(view), view)
    ok = rt.aligned_empty((4,), dtype, torch.device("cpu"))
    assert rt.aligned(ok) is ok  # already aligned: no copy


def test_build_progress_tracks_nested_phases_and_cancels():
    out = io.StringIO()
    progress = engines.BuildProgress("mask_decoder", file=out)
    progress.start("Building engine", None, 3)
    progress.start("Tactic selection", "Building engine", 2)
    assert progress.step("Tactic selection", 0) and progress.step("Tactic selection", 1)
    progress.finish("Tactic selection")
    assert progress.step("Building engine", 2)
    progress.cancel()
    assert progress.step("Building engine", 2) is False  # TensorRT stops the build
    progress.finish("Building engine")
    progress.finish("never started")
    text = out.getvalue()
    assert "mask_decoder: Building engine" in text and "3/3" in text and "Tactic selection" in text


def test_parser_errors_are_listed():
    msg = engines.parser_error_report(
        "mask_decoder",
        Path("x/mask_decoder.onnx"),
        ["In node 3 with name: /Resize and operator: Resize (importResize): UNSUPPORTED_NODE: antialias"],
    )
    assert "rejected x/mask_decoder.onnx (mask_decoder) with 1 error(s):\n  1. In node 3 with name: /Resize" in msg


# ------------------------------------------------ the backend around the engines (CPU)
def graph_runners(model, settings: graphs_backend.ModelSettings) -> dict[str, graphs_backend.Runner]:
    """The exported graphs' torch modules as runners, asserting the contract's input dtypes."""
    from export import graphs

    specs = contract.graph_specs(
        settings.image_size, settings.max_cond_frames, settings.num_maskmem, settings.max_obj_ptrs
    )

    def runner(name):
        spec, module = specs[name], graphs.WRAPPERS[name](model).eval()

        def run(**tensors):
            for t in spec.inputs:
                assert str(tensors[t.name].dtype) == f"torch.{t.dtype}", (name, t.name, tensors[t.name].dtype)
            with torch.inference_mode():
                out = module(*[tensors[n] for n in spec.input_names])
            return dict(zip(spec.output_names, out if isinstance(out, tuple) else (out,)))

        return run

    return {name: runner(name) for name in contract.GRAPH_NAMES}


def track_session(backend) -> list[torch.Tensor]:
    """Tracking with memory, clicks, a box, a correction and a mask prompt; every result's logits."""
    from sam2_ros.tracking import Sam2Tracker

    tracker = Sam2Tracker(backend, max_objects=3, max_cond_frames=2)
    base = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 20:50] = True
    out = []
    for i in range(6):
        out.append(tracker.track(np.roll(base, i, axis=1)).logits)
        if i == 0:
            out += [tracker.add_points(1, [[10, 10]]).logits, tracker.add_box(2, [5, 5, 40, 40]).logits]
        if i == 3:
            out += [tracker.add_points(1, [[20, 20], [30, 12]], [1, 0]).logits, tracker.add_mask(3, mask).logits]
    return out


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert [t.shape for t in a] == [t.shape for t in b]
    return max(float((x.float().cpu() - y.float().cpu()).abs().max()) if x.numel() else 0.0 for x, y in zip(a, b))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=64).eval()


def settings_of(model, max_cond_frames: int = 2) -> graphs_backend.ModelSettings:
    cfg = model.config
    return graphs_backend.ModelSettings(
        "sam2.1_hiera_t",
        model.image_size,
        max_cond_frames,
        cfg.num_maskmem,
        cfg.max_obj_ptrs_in_encoder,
        model.stability_rule,
        (cfg.multimask_min_pt_num, cfg.multimask_max_pt_num),
    )


def test_graph_backend_tracks_like_the_torch_backend(small_model):
    """Everything around the engines: defaults, constants, mask prompts, selection, memory."""
    from sam2_ros.tracking import Backend, TorchBackend

    settings = settings_of(small_model)
    constants = {"no_obj_ptr": small_model.no_obj_ptr.detach(), "no_mem_embed": small_model.no_mem_embed.detach()}
    backend = graphs_backend.GraphBackend(settings, graph_runners(small_model, settings), constants, "cpu")
    assert isinstance(backend, Backend)
    reference = track_session(TorchBackend(small_model))
    assert max_diff(track_session(backend), reference) < 1e-4
    # The same run with a wrong learned constant must fail the tolerance.
    wrong = dict(constants, no_mem_embed=constants["no_mem_embed"] + 0.5)
    assert (
        max_diff(
            track_session(graphs_backend.GraphBackend(settings, graph_runners(small_model, settings), wrong, "cpu")),
            reference,
        )
        > 1e-2
    )


def test_graph_backend_refuses_a_bank_of_another_size(small_model):
    from sam2_ros.tracking import Sam2Tracker

    settings = settings_of(small_model, max_cond_frames=4)
    constants = {"no_obj_ptr": small_model.no_obj_ptr.detach(), "no_mem_embed": small_model.no_mem_embed.detach()}
    tracker = Sam2Tracker(graphs_backend.GraphBackend(settings, {}, constants, "cpu"), max_cond_frames=2)
    tracker.bank.write([0], 0, torch.zeros(1, 64, 4, 4), torch.zeros(1, 256), [True])
    with pytest.raises(ValueError, match=r"Sam2Tracker\(backend, max_cond_frames=4\)"):
        tracker.backend.attend_memory(None, tracker.bank.gather([0], 1))


# ------------------------------------------------------------ TensorRT on a GPU only
def _tensorrt_and_cuda() -> bool:
    return HAS_TENSORRT and torch.cuda.is_available()


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_and_cuda(), reason="needs TensorRT 10 and a CUDA GPU")
@pytest.mark.parametrize("precision,atol", [("fp32", 1e-4), ("fp16", 2e-2)])
def test_tiny_engine_runs_like_torch(tiny, precision, atol):
    """Parse, pin, profile and build one engine, then run it at three batch/point sizes."""
    trt = rt.import_tensorrt()
    path, _ = tiny
    plan = engines.plan_graph("tiny", path, precision, 4, 4)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    cache = engines._load_timing_cache(builder, None)
    blob, pinned_layers = engines._build_one(trt, builder, logger, plan, precision, 1.0, cache, verbose=True)
    assert (len(pinned_layers) > 0) == (precision == "fp16")
    dev = torch.device("cuda")
    handle, _owner = rt.create_stream(dev)
    stream = torch.cuda.ExternalStream(handle, device=dev)
    runner = rt.EngineRunner(trt, trt.Runtime(logger), "tiny", blob, handle, dev, plan.dims)
    torch.manual_seed(0)
    module = Tiny().eval().to(dev)
    with torch.cuda.stream(stream):
        for b, n in ((1, 1), (3, 4), (2, 2)):
            inputs = {
                "x": torch.randn(b, 16, 8, device=dev),
                "t": torch.rand(b, device=dev) * 10,
                "points": torch.rand(b, n, 2, device=dev) * 64,
            }
            got = runner(**inputs)["y"]
            want = module(*inputs.values())
            torch.testing.assert_close(got, want, atol=atol, rtol=atol)
    stream.synchronize()


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_and_cuda(), reason="needs TensorRT 10 and a CUDA GPU")
def test_tensorrt_backend_tracks_like_the_torch_backend(small_model, tmp_path):
    """Export the tiny model, build fp32 engines, track with them; then refuse an edited manifest."""
    from export.onnx_export import export_onnx
    from sam2_ros.tracking import TorchBackend

    folder = tmp_path / "onnx"
    export_onnx(small_model, folder, max_cond_frames=2, progress=False)
    out = tmp_path / "engines"
    engines.build_engines(
        engines.prepare(folder, out, "fp32", max_objects=4, max_points=8, timing_cache=tmp_path / "timing.cache")
    )
    assert (tmp_path / "timing.cache").stat().st_size > 0
    backend = rt.TensorRTBackend.from_dir(out, "cuda")
    got = track_session(backend)
    reference = track_session(TorchBackend(copy.deepcopy(small_model), "cuda"))
    assert max_diff(got, reference) < 1e-3
    manifest = json.loads((out / rt.ENGINES_FILE).read_text())
    manifest["gpu"]["compute_capability"] = "5.0"
    (out / rt.ENGINES_FILE).write_text(json.dumps(manifest))
    with pytest.raises(rt.EngineError, match="compute capability 5.0 but this GPU has"):
        rt.TensorRTBackend.from_dir(out, "cuda")
