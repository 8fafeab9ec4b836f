"""Export a model to a folder of checked ONNX graphs, ``constants.npz`` and ``manifest.json``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from export.graphs import DEFAULT_OPSET, export_graph
from export.onnx_checks import check_graph
from sam2_ros.backends import contract
from sam2_ros.backends.manifest import FileEntry, Manifest, write_manifest
from sam2_ros.errors import UsageError
from sam2_ros.model import Sam2Model
from sam2_ros.utils.files import atomic_write, sha256_file


def export_onnx(
    model: Sam2Model,
    out_dir: str | Path,
    *,
    max_cond_frames: int = 4,
    opset: int = DEFAULT_OPSET,
    checkpoint_sha256: str = "random",
    progress: bool = True,
) -> Manifest:
    """Export every graph of ``model`` (fp32) into ``out_dir``, check each, then write the manifest.

    ``max_cond_frames`` fixes the memory attention's bank size; trackers using these graphs
    must use the same value. A previous manifest is removed first, so a folder whose export
    was interrupted has none and every reader refuses it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / contract.MANIFEST_FILE).unlink(missing_ok=True)
    if model.no_mem_embed.dtype != torch.float32:
        raise UsageError(
            f"export a float32 model (graphs are fp32; TensorRT picks precisions), got {model.no_mem_embed.dtype}"
        )
    cfg = model.config
    specs = contract.graph_specs(
        model.image_size, max_cond_frames, model.num_maskmem, cfg.max_obj_ptrs_in_encoder, model.mem_tokens
    )
    graphs = {}
    with tqdm(specs.values(), desc="export onnx", unit="graph", disable=not progress, dynamic_ncols=True) as bar:
        for spec in bar:
            bar.set_postfix(graph=spec.name, refresh=True)
            path = export_graph(model, spec, out_dir, opset)
            check_graph(path, spec)
            graphs[spec.name] = FileEntry(
                spec.file,
                sha256_file(path),
                tuple(t.as_dict() for t in spec.inputs),
                tuple(t.as_dict() for t in spec.outputs),
            )
    constants = _write_constants(model, out_dir)
    manifest = Manifest(
        model=cfg.name,
        checkpoint_sha256=checkpoint_sha256,
        image_size=model.image_size,
        max_cond_frames=max_cond_frames,
        opset=opset,
        num_maskmem=model.num_maskmem,
        max_obj_ptrs=cfg.max_obj_ptrs_in_encoder,
        stability=model.stability_rule,
        multimask_points=(cfg.multimask_min_pt_num, cfg.multimask_max_pt_num),
        graphs=graphs,
        constants=constants,
        mem_tokens=model.mem_tokens,
    )
    write_manifest(out_dir, manifest)
    return manifest


def _write_constants(model: Sam2Model, out_dir: Path) -> FileEntry:
    """The learned tensors runtimes apply outside the graphs, as float32 ``constants.npz``."""
    arrays = {"no_obj_ptr": model.no_obj_ptr, "no_mem_embed": model.no_mem_embed}
    buf = io.BytesIO()
    np.savez(buf, **{k: v.detach().float().cpu().numpy() for k, v in arrays.items()})
    path = out_dir / contract.CONSTANTS_FILE
    atomic_write(path, buf.getvalue())
    return FileEntry(contract.CONSTANTS_FILE, sha256_file(path))
