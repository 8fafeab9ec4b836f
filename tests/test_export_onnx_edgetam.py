"""ONNX export of EdgeTAM: graph checks, each graph under ONNX Runtime vs PyTorch, the manifest, tracking.

As tests/test_export_onnx.py for SAM 2.1, on one export through the CLI (``python -m export onnx
--model edgetam --checkpoint``) at 256 px with seeded random weights (object-score head biased so
objects are present). EdgeTAM's graphs differ from SAM 2.1's where the memory lives: the memory
encoder ends in the spatial perceiver and emits B x 512 x 64 latents per frame, and the memory
attention takes the tracker's fixed-size bank of such frames (RoPE on a 16 x 16 key grid per
frame). Static shapes except the object batch (and the decoder's points), TensorRT 10 operators
only, ``onnx.checker``: :func:`export.onnx_checks.check_graph`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from export.__main__ import main as export_main
from export.onnx_checks import check_graph
from export.precision import fp32_nodes
from sam2_ros.backends import contract
from sam2_ros.backends.manifest import read_manifest
from sam2_ros.backends.onnxruntime import OnnxRuntimeBackend, OrtRunner
from sam2_ros.model import build_sam2
from sam2_ros.tracking import MemoryBatch, Sam2Tracker, TorchBackend
from sam2_ros.tracking.imageops import preprocess
from tests.parity import RECORDED, assert_parity, randomize_

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

MODEL = "edgetam"
SIZE = 256
H = SIZE // 16
T = 512  # perceiver latents per memory frame
ATOL = 1e-4
ATOL_FEATS = 5e-4
NUM_FRAMES = 8
CLICK_1 = ([[300.0, 220.0]], [1])
BOX_2 = [560.0, 60.0, 820.0, 420.0]
CLICK_3 = ([[150.0, 400.0]], [1])  # frame 4: an object added mid-stream


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_sam2(MODEL, image_size=SIZE)
    randomize_(m, seed=2, std=0.05)
    with torch.no_grad():
        for name, buf in m.named_buffers():
            if name.endswith("running_var"):  # BatchNorm variances stay positive
                buf.copy_(buf.abs() + 0.5)
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 8.0
    return m.eval()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> Path:
    ckpt = tmp_path_factory.mktemp("ckpt") / "random_edgetam.pt"
    torch.save({"model": model.state_dict()}, ckpt)
    out = tmp_path_factory.mktemp("onnx_edgetam")
    rc = export_main(
        ["onnx", "--model", MODEL, "--checkpoint", str(ckpt), "--image-size", str(SIZE), "--out", str(out)]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def specs() -> dict[str, contract.GraphSpec]:
    return contract.graph_specs(SIZE, 4, mem_tokens=T)


@pytest.fixture(scope="module")
def run(exported, specs):
    return {
        name: OrtRunner(
            ort.InferenceSession(str(exported / spec.file), providers=["CPUExecutionProvider"]),
            spec,
            torch.device("cpu"),
        )
        for name, spec in specs.items()
    }


@pytest.fixture(scope="module")
def frames(data_dir) -> list[np.ndarray]:
    Image = pytest.importorskip("PIL.Image")
    folder = data_dir / "videos" / "bedroom"
    return [np.asarray(Image.open(folder / f"{i:05d}.jpg").convert("RGB")) for i in range(NUM_FRAMES)]


def close(name: str, ours: torch.Tensor, ref: torch.Tensor, atol: float = ATOL) -> None:
    assert_parity(f"onnxruntime[{MODEL}@{SIZE}].{name}", ours, ref, atol)


def test_manifest_records_latent_memory(exported):
    m = read_manifest(exported)
    assert (m.model, m.image_size, m.max_cond_frames, m.mem_tokens) == (MODEL, SIZE, 4, T)
    assert list(m.graphs) == list(contract.GRAPH_NAMES)
    mem = {t["name"]: t["shape"] for t in m.graphs["memory_attention"].inputs}
    assert mem["mem_feats"] == [10, "B", T, 64]
    assert m.graphs["memory_encoder"].outputs[0]["shape"] == ["B", T, 64]


@pytest.mark.parametrize("name", contract.GRAPH_NAMES)
def test_every_graph_passes_the_checks(exported, specs, name):
    """onnx.checker, the contract's I/O (static but B/N), opset, TensorRT 10 operators only."""
    check_graph(exported / specs[name].file, specs[name])


def test_fp32_plan_covers_perceiver_and_attention(exported, specs):
    """The fp16/bf16 engines keep the perceiver's and memory attention's norms and softmaxes in fp32."""
    for name in (contract.MEMORY_ENCODER, contract.MEMORY_ATTENTION):
        reasons = {n.reason for n in fp32_nodes(onnx.load(str(exported / specs[name].file)))}
        assert {"norm", "softmax"} <= reasons, (name, reasons)


def test_image_encoder(model, run, frames):
    image = preprocess(frames[0], SIZE, torch.device("cpu"))
    out = run[contract.IMAGE_ENCODER](image=image)
    with torch.no_grad():
        ref = model.encode_image(image)
    close("image_encoder.vision_feats", out["vision_feats"], ref.vision_feats, ATOL_FEATS)
    close("image_encoder.high_res_0", out["high_res_0"], ref.high_res[0], ATOL_FEATS)
    close("image_encoder.high_res_1", out["high_res_1"], ref.high_res[1], ATOL_FEATS)


def test_memory_encoder_mixed_batch(model, run):
    """Batched perceiver (Meta's fails for B > 1) in the graph equals the eager model."""
    gen = torch.Generator().manual_seed(1)
    vision = torch.randn(3, 256, H, H, generator=gen)
    masks = 8 * torch.randn(3, 1, SIZE, SIZE, generator=gen)
    from_points = torch.tensor([True, False, True])
    scores = torch.tensor([[3.0], [-2.0], [0.5]])
    out = run[contract.MEMORY_ENCODER](
        vision_feats=vision, masks=masks, from_points=from_points, object_score_logits=scores
    )["maskmem_features"]
    with torch.no_grad():
        ref, _ = model.encode_memory(vision, masks, scores, from_points)
    assert ref.shape == (3, T, 64)
    close("memory_encoder.maskmem_features (B=3, mixed)", out, ref)


def test_memory_attention_masked_bank_batch_3(model, run, frames):
    """The fixed-size masked latent bank in the graph equals TorchBackend's compacted eager attention."""
    gen = torch.Generator().manual_seed(0)
    slots, ptrs = contract.slot_counts(4, 7, 16)
    b = 3
    valid = torch.zeros(slots, b, dtype=torch.bool)
    valid[0] = True
    valid[1, 1] = True
    valid[4:10, 0] = True
    valid[4:7, 1] = True
    valid[9, 2] = True
    t_pos = torch.where(valid, torch.arange(slots)[:, None].expand(slots, b) - 3, 0).clamp(min=0)
    ptr_valid = torch.zeros(ptrs, b, dtype=torch.bool)
    ptr_valid[0] = True
    ptr_valid[4:19, 0] = True
    ptr_valid[[1, 4, 5], 1] = True
    ptr_valid[18, 2] = True
    t_diff = torch.where(ptr_valid, torch.arange(ptrs)[:, None].expand(ptrs, b).float() - 2.0, 0.0)
    feats = torch.randn(slots, b, T, 64, generator=gen)
    feats = torch.where(valid[..., None, None], feats, 100 * torch.randn(feats.shape, generator=gen))
    obj_ptrs = torch.where(ptr_valid[..., None], torch.randn(ptrs, b, 256, generator=gen), 100.0)
    memory = MemoryBatch(feats, t_pos, valid, obj_ptrs, t_diff, ptr_valid)
    torch_backend = TorchBackend(model)
    image_feats = torch_backend.encode_image(preprocess(frames[3], SIZE, torch.device("cpu"))).expand(b)
    ref = torch_backend.attend_memory(image_feats, memory)
    out = run[contract.MEMORY_ATTENTION](
        vision_feats=image_feats.vision_feats,
        mem_feats=memory.feats,
        mem_t_pos=memory.t_pos,
        mem_valid=memory.valid,
        obj_ptrs=memory.ptrs,
        ptr_t_diff=memory.ptr_t_diff,
        ptr_valid=memory.ptr_valid,
    )["pix_feat"]
    close("memory_attention.pix_feat (B=3, partly masked)", out, ref)


def track(backend, frames) -> dict[int, dict[int, torch.Tensor]]:
    tracker = Sam2Tracker(backend, max_objects=4, max_cond_frames=4, fill_hole_area=0)
    out = {}
    for f, frame in enumerate(frames):
        result = tracker.track(frame)
        if f == 0:
            tracker.add_points(1, *CLICK_1)
            result = tracker.add_box(2, BOX_2)
        elif f == 4:
            result = tracker.add_points(3, *CLICK_3)
        out[f] = {oid: result.logits[i].clone() for i, oid in enumerate(result.object_ids)}
    return out


def test_tracking_matches_torch_backend(model, exported, frames):
    """The streaming tracker on ONNX Runtime equals it on PyTorch (3 objects, one added mid-stream)."""
    backend = OnnxRuntimeBackend(exported)
    assert backend.memory_shape == (T, 64)
    ours, ref = track(backend, frames), track(TorchBackend(model), frames)
    worst = 0.0
    for f, objs in ref.items():
        assert sorted(ours[f]) == sorted(objs)
        for oid, exp in objs.items():
            worst = max(worst, ((ours[f][oid] - exp).norm() / exp.norm()).item())
    RECORDED[f"onnxruntime[{MODEL}@{SIZE}].tracker logits (rel L2 worst, {NUM_FRAMES}f)"] = (worst, worst, 1e-3)
    assert worst <= 1e-3


def test_tensorrt_plans_and_trtexec_script_cover_every_edgetam_graph(exported, tmp_path):
    """The TensorRT build plan (no TensorRT needed) of the EdgeTAM export: every graph, an object-batch
    profile up to --max-objects, the latent memory carried into the engines' settings, and a trtexec
    script with one build per graph."""
    from export import engines

    job = engines.prepare(exported, tmp_path / "engines", "fp16", max_objects=6, timing_cache=None)
    assert set(job.plans) == set(contract.GRAPH_NAMES)
    assert job.settings.mem_tokens == T and job.settings.image_size == SIZE
    # the object batch is the only dynamic axis; the memory is EdgeTAM's latents, not 16 x 16 maps
    mem = job.plans["memory_attention"].profile["mem_feats"]
    assert (mem["min"][1:], mem["max"][1:]) == ([1, T, 64], [6, T, 64])
    assert job.plans["memory_encoder"].profile["masks"]["max"] == [6, 1, SIZE, SIZE]
    script = engines.write_trtexec_script(job).read_text()
    assert sum(line.startswith('"$TRTEXEC" ') for line in script.splitlines()) == len(contract.GRAPH_NAMES)
    for graph in contract.GRAPH_NAMES:
        assert f"--onnx={exported / graph}.onnx" in script and f"--saveEngine={job.out / graph}.engine" in script
