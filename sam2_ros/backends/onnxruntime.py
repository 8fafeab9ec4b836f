"""ONNX Runtime backend: the tracker's steps as the exported ONNX graphs.

Everything around the graphs (default prompts, learned constants, mask-as-output, Meta's
output selection via ``finish_decoding``) is :class:`~sam2_ros.backends.tensorrt.GraphBackend`,
shared with the TensorRT backend, so the two runtimes differ only in how a graph is run.
Here a graph is an ``onnxruntime.InferenceSession`` called with torch tensors; the memory
bank and all tensors the tracker holds stay torch tensors on ``device``.

* CPU (``CPUExecutionProvider``): tensors cross to numpy at the call and back (no copy
  for outputs: ``torch.from_numpy``).
* CUDA (``CUDAExecutionProvider``, needs the ``onnxruntime-gpu`` package): I/O binding;
  inputs and outputs are torch CUDA tensors bound by ``data_ptr()``, so nothing leaves the
  GPU. ORT runs on its own stream, so the backend waits for torch's current stream before
  each run (inputs complete) and ORT synchronises its stream at the end of ``run`` (outputs
  complete). Not run where this was written (no GPU there).

The export folder's manifest is verified first (every file's SHA-256), and its settings
(image size, bank size ``max_cond_frames``, decoder rules) configure the backend; a
tracker with another ``max_cond_frames`` is refused on its first memory step, with the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sam2_ros.backends.contract import DYNAMIC_DIMS, GraphSpec, graph_specs
from sam2_ros.backends.graph import GraphBackend, ModelSettings
from sam2_ros.backends.manifest import Manifest, ManifestError, read_manifest

TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}


class OrtRunner:
    """One graph's ``InferenceSession``, called with named torch tensors, returning named torch tensors."""

    def __init__(self, session, spec: GraphSpec, device: torch.device) -> None:
        self.session, self.spec, self.device = session, spec, device
        got = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        if got != (spec.input_names, spec.output_names):
            raise ManifestError(
                f"{spec.file} has inputs/outputs {got}, the contract says "
                f"{(spec.input_names, spec.output_names)}; re-export"
            )

    def __call__(self, **tensors: Tensor) -> dict[str, Tensor]:
        inputs = {t.name: tensors[t.name].to(self.device, TORCH_DTYPES[t.dtype]).contiguous() for t in self.spec.inputs}
        if self.device.type == "cuda":
            return self._run_bound(inputs)
        outs = self.session.run(self.spec.output_names, {n: x.detach().numpy() for n, x in inputs.items()})
        return {n: torch.from_numpy(o) for n, o in zip(self.spec.output_names, outs)}

    def _run_bound(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Run with I/O binding on the tensors' CUDA memory (see the module docstring)."""
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        sizes = {
            d: inputs[t.name].shape[i] for t in self.spec.inputs for i, d in enumerate(t.shape) if d in DYNAMIC_DIMS
        }
        outputs = {
            t.name: torch.empty([sizes.get(d, d) for d in t.shape], dtype=TORCH_DTYPES[t.dtype], device=self.device)
            for t in self.spec.outputs
        }
        binding = self.session.io_binding()
        for name, t in inputs.items():
            binding.bind_input(name, "cuda", index, _numpy_dtype(t.dtype), tuple(t.shape), t.data_ptr())
        for name, t in outputs.items():
            binding.bind_output(name, "cuda", index, _numpy_dtype(t.dtype), tuple(t.shape), t.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return outputs


def _numpy_dtype(dtype: torch.dtype) -> type:
    return {torch.float32: np.float32, torch.int64: np.int64, torch.int32: np.int32, torch.bool: np.bool_}[dtype]


def default_providers(device: torch.device) -> list:
    """CUDA on ``device``'s GPU for a CUDA device (refused clearly without onnxruntime-gpu), else CPU."""
    import onnxruntime as ort  # noqa: PLC0415 - optional extra (onnx), loaded only when used

    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError(
            f"device {device} needs onnxruntime's CUDAExecutionProvider, which this onnxruntime "
            f"lacks (available: {ort.get_available_providers()}); install onnxruntime-gpu or use "
            f"device='cpu'"
        )
    index = device.index if device.index is not None else torch.cuda.current_device()
    return [("CUDAExecutionProvider", {"device_id": index})]


def settings_from_manifest(manifest: Manifest) -> ModelSettings:
    """The runtime settings an export folder was made for."""
    return ModelSettings(
        name=manifest.model,
        image_size=manifest.image_size,
        max_cond_frames=manifest.max_cond_frames,
        num_maskmem=manifest.num_maskmem,
        max_obj_ptrs=manifest.max_obj_ptrs,
        stability=manifest.stability,
        multimask_points=manifest.multimask_points,
        mem_tokens=manifest.mem_tokens,
    )


class OnnxRuntimeBackend(GraphBackend):
    """The tracker's backend on a folder written by ``python -m export onnx`` (fp32 graphs).

    ``providers`` overrides the execution providers (default: see :func:`default_providers`);
    I/O binding is used whenever ``device`` is CUDA. ``max_cond_frames`` (from the manifest)
    is the bank size the graphs take: create the tracker with
    ``Sam2Tracker(backend, max_cond_frames=backend.max_cond_frames)``.
    """

    name = "onnxruntime"

    def __init__(self, onnx_dir: str | Path, device: str | torch.device = "cpu", providers: list | None = None) -> None:
        import onnxruntime as ort  # noqa: PLC0415 - optional extra (onnx), loaded only when used

        onnx_dir = Path(onnx_dir)
        dev = torch.device(device)
        manifest = read_manifest(onnx_dir)
        specs = graph_specs(
            manifest.image_size,
            manifest.max_cond_frames,
            manifest.num_maskmem,
            manifest.max_obj_ptrs,
            manifest.mem_tokens,
        )
        for name, spec in specs.items():
            entry = manifest.graphs.get(name)
            if entry is None or (list(entry.inputs), list(entry.outputs)) != (
                [t.as_dict() for t in spec.inputs],
                [t.as_dict() for t in spec.outputs],
            ):
                raise ManifestError(
                    f"{onnx_dir}: graph {name} is missing or does not follow this version's graph "
                    f"contract; re-export with `python -m export onnx`"
                )
        providers = providers or default_providers(dev)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT warns about every initializer it folds away
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        runners = {
            name: OrtRunner(ort.InferenceSession(str(onnx_dir / spec.file), options, providers=providers), spec, dev)
            for name, spec in specs.items()
        }
        with np.load(onnx_dir / manifest.constants.file) as npz:
            constants = {k: torch.from_numpy(npz[k]) for k in npz.files}
        self.onnx_dir, self.manifest, self.providers = onnx_dir, manifest, providers
        self.checkpoint_sha256 = manifest.checkpoint_sha256  # "random" for untrained exports
        super().__init__(settings_from_manifest(manifest), runners, constants, dev)
