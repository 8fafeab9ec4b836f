"""Backends that run the exported graphs (the PyTorch backend is ``sam2_ros.tracking.TorchBackend``).

* ``sam2_ros.backends.onnxruntime.OnnxRuntimeBackend``: the ONNX graphs of
  ``python -m export onnx`` on ONNX Runtime (CPU, or CUDA with onnxruntime-gpu).
* ``sam2_ros.backends.tensorrt.TensorRTBackend``: TensorRT engines built from them (the runtime); beside it
  ``engines_manifest`` (``engines.json`` checks), ``trt_versions`` (TensorRT / cuda-python version gates,
  this machine's GPU) and ``cuda_stream`` (the CUDA stream).

Shared: ``contract`` (graph names and I/O), ``manifest`` (the ONNX export's ``manifest.json``), ``graph``
(``GraphBackend``, what both exported backends do around their graphs).

Nothing is imported here, so that using one backend never requires the other's runtime.
"""
