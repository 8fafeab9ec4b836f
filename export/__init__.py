"""Export SAM 2 to ONNX graphs (and, via ``export.engines``, TensorRT engines).

``python -m export onnx --model NAME --checkpoint PATH --out DIR`` writes one graph per
tracker step (:mod:`sam2_ros.backends.contract`), ``constants.npz`` and ``manifest.json``; the ONNX
Runtime backend (:mod:`sam2_ros.backends.onnxruntime`) and the TensorRT builder read that
folder. Modules: ``contract`` (graph I/O), ``graphs`` (wrappers, exporter),
``onnx_checks`` (validity, contract, TensorRT operator support), ``manifest`` (hashes,
settings), ``atomic`` (atomic writes), ``onnx_export`` (the whole folder); for engines,
``engines`` (builder, engines.json), ``precision`` (the layers kept in fp32), ``trtexec``
(the equivalent trtexec script), ``progress`` (build progress bars).
"""
