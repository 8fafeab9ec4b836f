"""TensorRT and cuda-python: which versions are installed, whether this machine can run them, what it is.

Pins: TensorRT 10 only (``tensorrt>=10.0,<11``; TensorRT 11 removed the weakly typed fp16 path
the builder uses) and cuda-python 12 (``cuda-python>=12.0,<13``): cuda-python 13 removed the
``cuda.cudart`` module and needs a CUDA 13 driver, while JetPack 6 is CUDA 12. Both layouts
(``cuda.bindings.runtime`` since 12.6.1, ``cuda.cudart`` before 13) are read; cuda-python 13 is
refused with the pin where the driver is older than CUDA 13. :func:`runtime_environment` describes
this machine as ``engines.json`` records it (TensorRT version, GPU, CUDA).
"""

from __future__ import annotations

import ctypes
from importlib import metadata
from typing import Any

import torch

from sam2_ros.backends.engines_manifest import EngineError

#: What the ``tensorrt`` extra of setup.cfg installs; the version checks below name these pins.
TENSORRT_PIN = "tensorrt>=10.0,<11"
CUDA_PYTHON_PIN = "cuda-python>=12.0,<13"


class CudaPythonVersionError(ImportError):
    """cuda-python is installed, but in a version this machine's CUDA driver cannot run."""


def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def import_tensorrt():
    """``tensorrt``, imported on first use with an install hint; TensorRT 10 only."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - optional tensorrt extra
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
        from cuda import bindings  # noqa: PLC0415 - optional tensorrt extra

        return str(bindings.__version__)
    except (ImportError, AttributeError):
        pass
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
        from cuda.bindings import runtime as cudart  # noqa: PLC0415 - optional tensorrt extra
    except ImportError:
        from cuda import cudart  # noqa: PLC0415 - optional tensorrt extra
    check_cuda_python(_cuda_python_version(), cuda_driver_version())
    return cudart


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
