"""Backends that run the exported graphs (the PyTorch backend is ``sam2_ros.tracking.TorchBackend``).

* ``sam2_ros.backends.onnxruntime.OnnxRuntimeBackend``: the ONNX graphs of
  ``python -m export onnx`` on ONNX Runtime (CPU, or CUDA with onnxruntime-gpu).
* ``sam2_ros.backends.tensorrt.TensorRTBackend``: TensorRT engines built from them.

Nothing is imported here, so that using one backend never requires the other's runtime.
"""
