"""TensorRT 10 backend: the tracker's four steps as prebuilt engines, on one CUDA stream.

What could not be executed where this was written: there is no GPU and no TensorRT on
that machine, so ``TensorRTBackend`` itself (deserialising engines, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``, the cuda-python stream) never ran there; those
calls follow the TensorRT 10 Python bindings (``python/src/infer/pyCore.cpp`` of
NVIDIA/TensorRT) and NVIDIA's ``samples/python/common_runtime.py``. What was run instead
(tests/test_tensorrt.py, CPU): the engines.json checks (wrong GPU, compute capability or
TensorRT version, corrupt or missing files, a truncated manifest), the profile limits, and
``GraphBackend`` -- everything this backend does around the engines -- driving the
streaming tracker with the exported graphs' PyTorch modules in place of engines, against
``TorchBackend``. The GPU tests in that file build real engines and skip without TensorRT.

Design:

* ``engines.json`` (written by ``python -m export engines``) is checked before anything is
  deserialised: every file's SHA-256, then the GPU (name and compute capability) and the
  TensorRT version the engines were built with. TensorRT plans only run on the GPU model
  and TensorRT version that built them; a mismatch is refused with the rebuild command.
* One CUDA stream (cuda-python, or pycuda) wrapped as ``torch.cuda.ExternalStream`` and
  made torch's current stream: pre/post-processing, bank gathers and engines are ordered
  by the stream itself, with no host synchronisation inside the backend.
* Engine inputs and outputs are torch CUDA tensors bound by ``data_ptr()``. Outputs are
  fresh tensors from torch's caching allocator (no ``cudaMalloc`` per frame, no sync);
  reusing fixed output buffers would alias results the tracker still holds (a prompt's
  decoder output for one object would overwrite another's). What is cached per input shape
  is the output shape plan, and input shapes are only re-set when they change.
* Versions: TensorRT 10 only (``tensorrt>=10.0,<11``; TensorRT 11 removed the weakly typed
  fp16 path the builder uses) and cuda-python 12 (``cuda-python>=12.0,<13``): cuda-python 13
  removed the ``cuda.cudart`` module and needs a CUDA 13 driver, while JetPack 6 is CUDA 12.
  Both layouts (``cuda.bindings.runtime`` since 12.6.1, ``cuda.cudart`` before 13) are read;
  cuda-python 13 is refused with the pin where the driver is older than CUDA 13.
* Addresses: ``set_tensor_address`` returns False for an address TensorRT cannot use (a
  tensor must start on a 256-byte boundary); that is an error naming the tensor, and inputs
  that start elsewhere (views into a larger tensor) are first copied to an aligned buffer.
* I/O types: the graphs take float32, int32, int64 (``mem_t_pos``) and bool (``mem_valid``,
  ``ptr_valid``, ``from_points``) tensors. TensorRT 10 supports INT64 and BOOL network I/O
  natively (``DataType.INT64``; ``BOOL`` is one byte, 0/1, the layout of ``torch.bool``), so
  torch tensors are bound as they are, without conversion kernels.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sam2_ros.backends.graph import GraphBackend, ModelSettings
from sam2_ros.utils.files import sha256_file

ENGINES_FILE = "engines.json"
#: What the ``tensorrt`` extra of setup.cfg installs; the version checks below name these pins.
TENSORRT_PIN = "tensorrt>=10.0,<11"
CUDA_PYTHON_PIN = "cuda-python>=12.0,<13"
#: TensorRT requires every I/O tensor address to be a multiple of this (bytes).
ADDRESS_ALIGNMENT = 256
FORMAT_VERSION = 1
GRAPHS = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder", "mask_downsample")
CONSTANTS = ("no_obj_ptr", "no_mem_embed")

#: TensorRT ``DataType`` names -> torch dtypes (``BOOL`` is one byte 0/1, like torch.bool).
TORCH_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
}


class EngineError(RuntimeError):
    """Engines that cannot be used here: missing, corrupt, or built for another GPU/TensorRT."""


class CudaPythonVersionError(ImportError):
    """cuda-python is installed, but in a version this machine's CUDA driver cannot run."""


# ------------------------------------------------------------------- engines.json checks
def rebuild_command(manifest: Mapping[str, Any], engine_dir: Path | str | None = None) -> str:
    """The exact ``python -m export engines`` call that rebuilds these engines on this machine."""
    b = manifest.get("build") if isinstance(manifest.get("build"), dict) else {}
    out = engine_dir if engine_dir is not None else b.get("out", "ENGINE_DIR")
    return " ".join(
        shlex.quote(str(a))
        for a in (
            "python",
            "-m",
            "export",
            "engines",
            "--onnx",
            b.get("onnx_dir", "ONNX_DIR"),
            "--out",
            out,
            f"--{b.get('precision', 'fp16')}",
            "--max-objects",
            b.get("max_objects", 16),
            "--max-points",
            b.get("max_points", 8),
        )
    )


_REQUIRED = {
    "format": int,
    "tensorrt": str,
    "gpu": dict,
    "model": dict,
    "checkpoint_sha256": str,
    "build": dict,
    "constants": dict,
    "engines": dict,
}


def read_engines_manifest(engine_dir: Path | str) -> dict[str, Any]:
    """``engine_dir/engines.json``, parsed and checked for the fields the backend relies on."""
    engine_dir = Path(engine_dir)
    path = engine_dir / ENGINES_FILE
    hint = "build engines with `python -m export engines --onnx ONNX_DIR --out DIR` (see docs/export.md)"
    if not path.is_file():
        raise EngineError(f"{path} not found: {engine_dir} holds no TensorRT engines; {hint}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(
            f"{path} is not valid JSON ({exc}); the file is truncated or damaged. Rebuild the engines: {hint}"
        ) from None
    if not isinstance(manifest, dict):
        raise EngineError(f"{path} must hold a JSON object, got {type(manifest).__name__}; {hint}")
    bad = [k for k, kind in _REQUIRED.items() if not isinstance(manifest.get(k), kind)]
    if bad:
        raise EngineError(
            f"{path} lacks or has malformed fields {bad}; it was not written by "
            f"`python -m export engines` or is damaged. Rebuild: {rebuild_command(manifest, engine_dir)}"
        )
    if manifest["format"] != FORMAT_VERSION:
        raise EngineError(
            f"{path} has format {manifest['format']}, this sam2_ros reads format {FORMAT_VERSION}. "
            f"Rebuild: {rebuild_command(manifest, engine_dir)}"
        )
    missing = [g for g in GRAPHS if g not in manifest["engines"]]
    if missing:
        raise EngineError(f"{path} lists no engine for {missing}. Rebuild: {rebuild_command(manifest, engine_dir)}")
    return manifest


def verify_engine_files(manifest: Mapping[str, Any], engine_dir: Path | str) -> None:
    """Every engine and the constants file exists and has the SHA-256 engines.json records.

    Runs before TensorRT sees a byte: deserialising a damaged plan can crash the process
    instead of raising.
    """
    engine_dir = Path(engine_dir)
    entries = [(name, manifest["engines"][name]) for name in GRAPHS] + [("constants", manifest["constants"])]
    for name, entry in entries:
        path = engine_dir / entry["file"]
        if not path.is_file():
            raise EngineError(f"{path} ({name}) is missing. Rebuild: {rebuild_command(manifest, engine_dir)}")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise EngineError(
                f"{path} ({name}) is corrupt or was modified: its SHA-256 is {digest}, "
                f"engines.json records {entry['sha256']}. Rebuild: "
                f"{rebuild_command(manifest, engine_dir)}"
            )


def check_manifest(manifest: Mapping[str, Any], env: Mapping[str, Any], engine_dir: Path | str | None = None) -> None:
    """Refuse engines built for another GPU or TensorRT version (pure: ``env`` describes this machine).

    ``env`` is :func:`runtime_environment`'s dict. A plan only runs on the GPU model
    (name and compute capability) and the exact TensorRT version that built it.
    """
    problems = []
    built_gpu, here_gpu = manifest["gpu"], env["gpu"]
    if built_gpu.get("name") != here_gpu["name"]:
        problems.append(
            f"they were built for the GPU '{built_gpu.get('name')}' but this machine has '{here_gpu['name']}'"
        )
    if str(built_gpu.get("compute_capability")) != str(here_gpu["compute_capability"]):
        problems.append(
            f"they were built for compute capability {built_gpu.get('compute_capability')} but this "
            f"GPU has compute capability {here_gpu['compute_capability']}"
        )
    if manifest["tensorrt"] != env["tensorrt"]:
        problems.append(
            f"they were built with TensorRT {manifest['tensorrt']} but TensorRT {env['tensorrt']} is installed here"
        )
    if problems:
        where = f"The engines in {engine_dir}" if engine_dir is not None else "These engines"
        raise EngineError(
            f"{where} cannot run here: {'; '.join(problems)}. TensorRT engines only run on the GPU "
            f"model and TensorRT version that built them. Rebuild them on this machine:\n  "
            f"{rebuild_command(manifest, engine_dir)}"
        )


def check_profile(
    graph: str, name: str, shape: tuple[int, ...], dims: list[int | str], profile: Mapping[str, list[int]]
) -> None:
    """Raise a clear error when an input shape lies outside the engine's optimisation profile.

    ``dims`` are the input's ONNX dimensions (``"B"``: objects per call, ``"N"``: prompt points).
    """
    lo, hi = profile["min"], profile["max"]
    if len(shape) == len(lo) and all(a <= s <= b for s, a, b in zip(shape, lo, hi)):
        return
    hints = {
        "B": "objects per call; rebuild with a larger --max-objects",
        "N": "prompt points per object; rebuild with a larger --max-points",
    }
    why = [
        f"axis {i} ({d}: {hints.get(d, 'fixed')}) is {s}, allowed {a}..{b}"
        for i, (s, d, a, b) in enumerate(zip(shape, dims, lo, hi))
        if not a <= s <= b
    ]
    raise ValueError(
        f"{graph}: input '{name}' has shape {tuple(shape)}, outside the engine's profile "
        f"(min {tuple(lo)}, max {tuple(hi)}): {'; '.join(why) or 'wrong rank'}"
    )


def torch_dtype(trt_type_name: str) -> torch.dtype:
    """The torch dtype for a TensorRT ``DataType`` name (``FLOAT``, ``INT64``, ``BOOL``, ...)."""
    try:
        return TORCH_DTYPES[trt_type_name]
    except KeyError:
        raise EngineError(f"engine tensor type {trt_type_name} has no torch equivalent") from None


# --------------------------------------------------------------------------- TensorRT
def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def import_tensorrt():
    """``tensorrt``, imported on first use with an install hint; TensorRT 10 only."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(
            f"the TensorRT backend needs TensorRT's Python package (10.x): `pip install -e .[tensorrt]` "
            f"(or `pip install '{TENSORRT_PIN}' '{CUDA_PYTHON_PIN}'`); on a Jetson it comes with "
            f"JetPack (python3-libnvinfer)"
        ) from exc
    major = _major(trt.__version__)
    if major is None or major < 10:
        raise ImportError(
            f"TensorRT {trt.__version__} is installed; sam2_ros needs TensorRT 10 (named I/O tensors, "
            f"execute_async_v3, INT64 I/O): `pip install '{TENSORRT_PIN}'`"
        )
    if major > 10:
        raise ImportError(
            f"TensorRT {trt.__version__} is installed; sam2_ros needs TensorRT 10: TensorRT 11 removed "
            f"the weakly typed fp16/bf16 path its engines are built with (BuilderFlag.FP16, "
            f"OBEY_PRECISION_CONSTRAINTS, ILayer.precision). Install `pip install '{TENSORRT_PIN}'` "
            f"(the `tensorrt` extra's pin; JetPack 6 ships TensorRT 10.3)"
        )
    return trt


def cuda_driver_version() -> int | None:
    """The CUDA version the installed driver supports (12020 for 12.2), from libcuda itself; None if unknown.

    Asked of the driver directly rather than through cuda-python, whose version is what is
    being checked.
    """
    import ctypes

    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return version.value


def _cuda_python_version() -> str | None:
    """The installed cuda-python (cuda-bindings) version, whichever module layout it has."""
    try:
        from cuda import bindings

        return str(bindings.__version__)
    except (ImportError, AttributeError):
        pass
    from importlib import metadata

    for dist in ("cuda-python", "cuda-bindings"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_cuda_python(version: str | None, driver: int | None) -> None:
    """Refuse a cuda-python newer than the driver's CUDA major version (pure; ``driver`` like 12020).

    cuda-python N.x links the CUDA N runtime, which needs a CUDA N driver: cuda-python 13 on
    a CUDA 12 driver (JetPack 6) cannot even create a stream.
    """
    major, driver_major = _major(version), None if driver is None else driver // 1000
    if major is None or driver_major is None or major <= driver_major:
        return
    raise CudaPythonVersionError(
        f"cuda-python {version} is installed, but this machine's CUDA driver supports CUDA {driver_major}."
        f"{driver % 1000 // 10}: cuda-python {major} needs a CUDA {major} driver (JetPack 6 is CUDA 12). "
        f"Install `pip install '{CUDA_PYTHON_PIN}'` (the `tensorrt` extra's pin)"
    )


def _import_cudart():
    """cuda-python's runtime module, checked against the driver.

    ``cuda.bindings.runtime`` since cuda-python 12.6.1; ``cuda.cudart`` before (a deprecated
    alias through 12.9, removed in 13.0).
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    check_cuda_python(_cuda_python_version(), cuda_driver_version())
    return cudart


def _stream_handle(stream) -> int:
    """A cuda-python ``cudaStream_t`` as an integer (``get_cuda_native_handle`` where it exists, 12.9.1+)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))


def aligned(t: Tensor, alignment: int = ADDRESS_ALIGNMENT) -> Tensor:
    """``t`` if its data starts on an ``alignment``-byte boundary, else an aligned contiguous copy.

    Fresh CUDA allocations are aligned (torch's caching allocator hands out 512-byte blocks);
    views that start inside a larger tensor, such as a slice of the memory bank, may not be.
    """
    if t.data_ptr() % alignment == 0:
        return t
    return aligned_empty(t.shape, t.dtype, t.device, alignment).copy_(t)


def aligned_empty(shape, dtype: torch.dtype, device: torch.device, alignment: int = ADDRESS_ALIGNMENT) -> Tensor:
    """An uninitialised contiguous tensor whose data starts on an ``alignment``-byte boundary."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if out.data_ptr() % alignment == 0:
        return out
    item = out.element_size()
    buf = torch.empty(out.numel() + alignment // item, dtype=dtype, device=device)
    skip = (-buf.data_ptr()) % alignment // item
    return buf[skip : skip + out.numel()].view(shape)


def _cuda_device(device: torch.device | str) -> torch.device:
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"TensorRT engines run on CUDA devices, got device {str(device)!r}")
    if not torch.cuda.is_available():
        raise EngineError("TensorRT needs a CUDA GPU, and torch sees none (torch.cuda.is_available() is False)")
    return torch.device("cuda", torch.cuda.current_device() if dev.index is None else dev.index)


def runtime_environment(device: torch.device | str = "cuda") -> dict[str, Any]:
    """This machine as engines.json records it: TensorRT version, GPU name and compute capability, CUDA."""
    trt = import_tensorrt()
    dev = _cuda_device(device)
    major, minor = torch.cuda.get_device_capability(dev)
    return {
        "tensorrt": trt.__version__,
        "gpu": {"name": torch.cuda.get_device_name(dev), "compute_capability": f"{major}.{minor}"},
        "cuda": _cuda_versions(),
    }


def _cuda_versions() -> dict[str, str | None]:
    """CUDA driver and runtime versions ("12.4"); the driver's only through cuda-python."""

    def fmt(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}"

    try:
        cudart = _import_cudart()
    except CudaPythonVersionError:
        raise
    except ImportError:
        return {"driver": None, "runtime": torch.version.cuda}
    err_d, driver = cudart.cudaDriverGetVersion()
    err_r, runtime = cudart.cudaRuntimeGetVersion()
    ok = cudart.cudaError_t.cudaSuccess
    return {"driver": fmt(driver) if err_d == ok else None, "runtime": fmt(runtime) if err_r == ok else None}


def create_stream(device: torch.device) -> tuple[int, object]:
    """A new CUDA stream on ``device``: (handle, owner keeping it alive).

    cuda-python's ``cudaStreamCreate`` makes a blocking stream (ordered with the legacy
    default stream that other threads' torch work uses); pycuda serves where it is the one
    installed, on the primary context torch also uses.
    """
    with torch.cuda.device(device):
        torch.cuda.current_stream(device)  # the primary context exists before either library looks for it
        try:
            cudart = _import_cudart()
        except CudaPythonVersionError:
            raise
        except ImportError:
            cudart = None
        if cudart is not None:
            err, stream = cudart.cudaStreamCreate()
            if err != cudart.cudaError_t.cudaSuccess:
                raise EngineError(f"cudaStreamCreate failed: {err}")
            return _stream_handle(stream), stream
        try:
            import pycuda.driver as drv
        except ImportError as exc:
            raise ImportError(
                f"the TensorRT backend creates its CUDA stream with cuda-python (`pip install "
                f"'{CUDA_PYTHON_PIN}'`, part of `pip install -e .[tensorrt]`) or pycuda; neither is "
                f"installed"
            ) from exc
        drv.init()
        ctx = drv.Device(device.index).retain_primary_context()
        ctx.push()
        try:
            stream = drv.Stream()
        finally:
            drv.Context.pop()
        return int(stream.handle), (ctx, stream)


class EngineRunner:
    """One deserialised engine and its execution context, called with named torch tensors.

    Input shapes are set only when they change; the output shapes TensorRT derives are
    cached per input-shape combination; outputs are fresh tensors (see module docstring).
    """

    def __init__(
        self,
        trt,
        runtime,
        graph: str,
        blob: bytes,
        stream_handle: int,
        device: torch.device,
        dims: Mapping[str, list[int | str]],
    ) -> None:
        engine = runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise EngineError(f"TensorRT could not deserialize the {graph} engine (see its log above)")
        self.graph, self.engine, self.device, self._stream = graph, engine, device, stream_handle
        self._runtime = runtime  # must outlive the engine it deserialised
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        host_io = [n for n in names if engine.is_shape_inference_io(n)]
        if host_io:
            raise EngineError(
                f"{graph}: tensors {host_io} are shape tensors (host memory); the export contract "
                f"has none. Re-export the ONNX graphs and rebuild the engines"
            )
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: torch_dtype(engine.get_tensor_dtype(n).name) for n in names}
        self.profiles = {}
        for n in self.inputs:
            if -1 in tuple(engine.get_tensor_shape(n)):
                lo, opt, hi = engine.get_tensor_profile_shape(n, 0)
                self.profiles[n] = {"min": list(lo), "opt": list(opt), "max": list(hi)}
        self._dims = dims
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._plans: dict[tuple, list[tuple[str, tuple[int, ...]]]] = {}

    def __call__(self, **tensors: Tensor) -> dict[str, Tensor]:
        bound = []  # keeps converted inputs alive until the launch is enqueued
        for name in self.inputs:
            t = aligned(tensors[name].to(self.device, self.dtypes[name]).contiguous())
            shape = tuple(t.shape)
            if name in self.profiles and self._shapes.get(name) != shape:
                check_profile(self.graph, name, shape, self._dims[name], self.profiles[name])
                if not self.context.set_input_shape(name, shape):
                    raise EngineError(f"{self.graph}: TensorRT refused shape {shape} for input '{name}'")
                self._shapes[name] = shape
            self._bind("input", name, t)
            bound.append(t)
        key = tuple(self._shapes.get(n) for n in self.profiles)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = [(n, tuple(self.context.get_tensor_shape(n))) for n in self.outputs]
        outputs = {n: aligned_empty(shape, self.dtypes[n], self.device) for n, shape in plan}
        for n, t in outputs.items():
            self._bind("output", n, t)
        if not self.context.execute_async_v3(self._stream):
            raise EngineError(f"{self.graph}: execute_async_v3 failed (see the TensorRT log above)")
        return outputs

    def _bind(self, kind: str, name: str, t: Tensor) -> None:
        """``set_tensor_address``, whose False (unknown name, unusable address) is an error here."""
        if not self.context.set_tensor_address(name, t.data_ptr()):
            raise EngineError(
                f"{self.graph}: TensorRT refused the address {t.data_ptr():#x} of {kind} '{name}' "
                f"(shape {tuple(t.shape)}, {t.dtype}, {t.device}); addresses must be "
                f"{ADDRESS_ALIGNMENT}-byte aligned device memory (see the TensorRT log above)"
            )


class TensorRTBackend(GraphBackend):
    """The tracker's backend on engines built by ``python -m export engines`` (TensorRT 10).

    Checks ``engines.json`` (file hashes, GPU, TensorRT version) before deserialising, then
    runs every call on one CUDA stream that is also made torch's current stream for the
    constructing thread (``self.stream``; other threads can enter ``torch.cuda.stream(backend.stream)``).
    The stream lives as long as the process: torch may still hold it as its current stream.
    Not thread-safe: one execution context per engine.
    """

    name = "tensorrt"

    def __init__(self, engine_dir: Path | str, device: torch.device | str = "cuda") -> None:
        engine_dir = Path(engine_dir)
        manifest = read_engines_manifest(engine_dir)
        verify_engine_files(manifest, engine_dir)
        trt = import_tensorrt()
        dev = _cuda_device(device)
        check_manifest(manifest, runtime_environment(dev), engine_dir)
        handle, self._stream_owner = create_stream(dev)
        self.stream = torch.cuda.ExternalStream(handle, device=dev)
        torch.cuda.set_stream(self.stream)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        runners = {}
        with torch.cuda.stream(self.stream):
            for graph in GRAPHS:
                entry = manifest["engines"][graph]
                dims = {t["name"]: t["shape"] for t in entry["inputs"]}
                runners[graph] = EngineRunner(
                    trt, runtime, graph, (engine_dir / entry["file"]).read_bytes(), handle, dev, dims
                )
            with np.load(engine_dir / manifest["constants"]["file"]) as npz:
                constants = {k: torch.from_numpy(npz[k]) for k in CONSTANTS}
        self.engine_dir, self.manifest = engine_dir, manifest
        self.checkpoint_sha256 = manifest["checkpoint_sha256"]  # the exported weights, "random" if untrained
        super().__init__(ModelSettings.from_dict(manifest["model"]), runners, constants, dev)

    @classmethod
    def from_dir(cls, path: Path | str, device: torch.device | str = "cuda") -> TensorRTBackend:
        """The backend for the engines in ``path`` (what ``sam2-ros track --backend tensorrt`` calls)."""
        return cls(path, device)

    def _ordered(self) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.stream)
