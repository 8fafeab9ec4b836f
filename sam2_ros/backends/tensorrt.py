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
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sam2_ros.backends.cuda_stream import create_stream
from sam2_ros.backends.engines_manifest import (
    CONSTANTS,
    ENGINES_FILE,
    GRAPHS,
    EngineError,
    check_manifest,
    check_profile,
    read_engines_manifest,
    verify_engine_files,
)
from sam2_ros.backends.graph import GraphBackend, ModelSettings
from sam2_ros.backends.trt_versions import _cuda_device, import_tensorrt, runtime_environment

__all__ = [  # the engines.json checks, version probing and stream live beside this module; these names stay here
    "ENGINES_FILE",
    "GRAPHS",
    "EngineError",
    "EngineRunner",
    "TensorRTBackend",
    "check_manifest",
    "check_profile",
    "create_stream",
    "import_tensorrt",
    "read_engines_manifest",
    "runtime_environment",
    "verify_engine_files",
]

#: TensorRT requires every I/O tensor address to be a multiple of this (bytes).
ADDRESS_ALIGNMENT = 256

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


def torch_dtype(trt_type_name: str) -> torch.dtype:
    """The torch dtype for a TensorRT ``DataType`` name (``FLOAT``, ``INT64``, ``BOOL``, ...)."""
    try:
        return TORCH_DTYPES[trt_type_name]
    except KeyError:
        raise EngineError(f"engine tensor type {trt_type_name} has no torch equivalent") from None


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
