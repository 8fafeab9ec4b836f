"""The TensorRT backend's CUDA stream: created with cuda-python (or pycuda), handed to torch as an ExternalStream.

One stream orders pre/post-processing, bank gathers and engines by itself, with no host
synchronisation inside the backend (``sam2_ros.backends.tensorrt``).
"""

from __future__ import annotations

import torch

from sam2_ros.backends.engines_manifest import EngineError
from sam2_ros.backends.trt_versions import CUDA_PYTHON_PIN, CudaPythonVersionError, _import_cudart


def _stream_handle(stream) -> int:
    """A cuda-python ``cudaStream_t`` as an integer (``get_cuda_native_handle`` where it exists, 12.9.1+)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle  # noqa: PLC0415 - optional tensorrt extra
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))


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
            import pycuda.driver as drv  # noqa: PLC0415 - optional tensorrt extra
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
