"""ONNX export: graph checks, each graph under ONNX Runtime vs PyTorch, the manifest, tracking.

One export per module, through the CLI (``python -m export onnx --checkpoint``): sam2.1
tiny at 256 px with seeded random weights scaled like the parity tests and the object-score
head biased so objects are present (otherwise every mask is the -1024 no-object fill and
tracking parity would be trivial). Graph parity compares each ONNX graph, run by ONNX
Runtime on CPU in fp32, with the PyTorch step it was exported from; tracking parity runs the
streaming tracker on the bedroom clip once with ``TorchBackend`` and once with
``OnnxRuntimeBackend``. Tolerances are fp32 reordering noise with headroom (measured values
are printed in the parity table at the end of the run). The TensorRT layer names pinned to
fp32 are checked on the same export, with a stand-in for TensorRT's ONNX parser.
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.__main__ import main as export_main
from export.onnx_checks import OnnxCheckError, check_graph
from sam2_ros.backends import contract
from sam2_ros.backends.manifest import ManifestError, read_manifest, sha256_file
from sam2_ros.backends.onnxruntime import OnnxRuntimeBackend, OrtRunner
from sam2_ros.cli import main as cli_main
from sam2_ros.model import build_sam2
from sam2_ros.tracking import MemoryBatch, Sam2Tracker, TorchBackend
from sam2_ros.tracking.imageops import preprocess
from tests.parity import RECORDED, assert_parity, randomize_

# Not a module-level importorskip (see tests/test_annotate.py): skipped by a mark when it is missing.
try:
    import onnxruntime as ort
except ImportError as exc:
    ort = None
    pytestmark = pytest.mark.skip(reason=f"needs onnxruntime (the onnx extra): {exc}")

MODEL = "sam2.1_hiera_t"
SIZE = 256
H = SIZE // 16
ATOL = 1e-4  # graph vs its PyTorch step, fp32 (measured <= 4.4e-6; the parity table has every value)
ATOL_FEATS = 5e-4  # stride-16 image features, values up to ~26 after 12 Hiera blocks (measured 4.4e-5)
NUM_FRAMES = 20
TRACK_IOU = 0.99
CLICK_1 = ([[300.0, 220.0]], [1])
BOX_2 = [560.0, 60.0, 820.0, 420.0]
CORRECTION_1 = ([[340.0, 300.0]], [0])  # frame 6
CLICK_3 = ([[150.0, 400.0]], [1])  # frame 10: an object added mid-stream


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_sam2(MODEL, image_size=SIZE)
    randomize_(m, seed=2, std=0.05)
    with torch.no_grad():
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += 8.0
    return m.eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "random_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    rc = export_main(
        ["onnx", "--model", MODEL, "--checkpoint", str(checkpoint), "--image-size", str(SIZE), "--out", str(out)]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def specs() -> dict[str, contract.GraphSpec]:
    return contract.graph_specs(SIZE, 4)


@pytest.fixture(scope="module")
def run(exported, specs):
    """Graph name -> callable running that ONNX graph in ONNX Runtime (CPU) on torch tensors."""
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
    Image = pytest.importorskip("PIL.Image")  # the test extra's; tests/ must collect without it
    folder = data_dir / "videos" / "bedroom"
    return [np.asarray(Image.open(folder / f"{i:05d}.jpg").convert("RGB")) for i in range(NUM_FRAMES)]


def close(name: str, ours: torch.Tensor, ref: torch.Tensor, atol: float = ATOL) -> None:
    assert_parity(f"onnxruntime[{MODEL}@{SIZE}].{name}", ours, ref, atol)


# ------------------------------------------------------------------- export and checks
def test_manifest_records_the_export(exported, checkpoint):
    m = read_manifest(exported)
    assert (m.model, m.image_size, m.max_cond_frames, m.opset) == (MODEL, SIZE, 4, 18)
    assert m.checkpoint_sha256 == sha256_file(checkpoint)
    assert (m.num_maskmem, m.max_obj_ptrs, m.stability, m.multimask_points) == (7, 16, (0.05, 0.98), (0, 1))
    assert list(m.graphs) == list(contract.GRAPH_NAMES)
    io = m.graphs["memory_attention"].inputs
    assert [(t["name"], t["shape"], t["dtype"]) for t in io][1:4] == [
        ("mem_feats", [10, "B", 64, H, H], "float32"),
        ("mem_t_pos", [10, "B"], "int64"),
        ("mem_valid", [10, "B"], "bool"),
    ]
    with np.load(exported / contract.CONSTANTS_FILE) as npz:
        assert {k: npz[k].shape for k in npz.files} == contract.CONSTANT_SHAPES


@pytest.mark.parametrize("name", contract.GRAPH_NAMES)
def test_every_graph_passes_the_checks(exported, specs, name):
    """Valid ONNX (full check), the contract's I/O, opset 17..20, no complex types, TensorRT 10 ops only."""
    check_graph(exported / specs[name].file, specs[name])


def test_checks_reject_unsupported_ops_dynamic_dims_and_antialiasing(exported, specs, tmp_path):
    spec = specs[contract.MASK_DOWNSAMPLE]
    model = onnx.load(str(exported / spec.file))
    g = model.graph
    scales = onnx.helper.make_tensor("scales", onnx.TensorProto.FLOAT, [4], [1, 1, 0.5, 0.5])
    g.initializer.append(scales)
    g.node.extend(
        [
            onnx.helper.make_node("Unique", ["mask"], ["uniq"], name="unique"),
            onnx.helper.make_node("Resize", ["mask", "", "scales"], ["small"], name="aa", mode="linear", antialias=1),
            onnx.helper.make_node("Resize", ["mask", "", "scales"], ["cubic"], name="cubic", mode="cubic"),
        ]
    )
    g.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(OnnxCheckError) as err:
        check_graph(bad, spec)
    text = str(err.value)
    assert "operators not in the TensorRT 10 set: Unique" in text
    assert "'aa': antialias" in text and "'cubic': mode 'cubic'" in text
    assert "input mask has dynamic dims ['H']" in text


# --------------------------------------------------------------- graph parity (ORT vs torch)
def test_image_encoder(model, run, frames):
    image = preprocess(frames[0], SIZE, torch.device("cpu"))
    out = run[contract.IMAGE_ENCODER](image=image)
    with torch.no_grad():
        ref = model.encode_image(image)
    close("image_encoder.vision_feats", out["vision_feats"], ref.vision_feats, ATOL_FEATS)
    close("image_encoder.high_res_0", out["high_res_0"], ref.high_res[0])
    close("image_encoder.high_res_1", out["high_res_1"], ref.high_res[1])


def partly_masked_bank(b: int = 3, seed: int = 0) -> MemoryBatch:
    """A full-size bank for ``b`` objects: per-object valid slots, two slots unused by all.

    Unused slots hold large random values: they must not change the result.
    """
    gen = torch.Generator().manual_seed(seed)
    slots, ptrs = contract.slot_counts(4, 7, 16)
    valid = torch.zeros(slots, b, dtype=torch.bool)
    valid[0] = True  # every object has its first conditioning frame
    valid[1, 1] = True  # object 1: a second conditioning frame
    valid[4:10, 0] = True  # object 0: all six recent frames
    valid[4:7, 1] = True
    valid[9, 2] = True  # slots 2 and 3 are unused by every object
    t_pos = torch.where(valid, torch.arange(slots)[:, None].expand(slots, b) - 3, 0).clamp(min=0)
    ptr_valid = torch.zeros(ptrs, b, dtype=torch.bool)
    ptr_valid[0] = True
    ptr_valid[4:19, 0] = True
    ptr_valid[[1, 4, 5, 6], 1] = True
    ptr_valid[[18], 2] = True
    t_diff = torch.where(ptr_valid, torch.arange(ptrs)[:, None].expand(ptrs, b).float() - 2.0, 0.0)
    feats = torch.randn(slots, b, 64, H, H, generator=gen)
    feats = torch.where(valid[..., None, None, None], feats, 100 * torch.randn(feats.shape, generator=gen))
    obj_ptrs = torch.randn(ptrs, b, 256, generator=gen)
    obj_ptrs = torch.where(ptr_valid[..., None], obj_ptrs, 100.0)
    return MemoryBatch(feats, t_pos, valid, obj_ptrs, t_diff, ptr_valid)


def test_memory_attention_masked_bank_batch_3(model, run, frames):
    """The fixed-size masked bank in the graph equals TorchBackend's eager attention on it."""
    image = preprocess(frames[3], SIZE, torch.device("cpu"))
    torch_backend = TorchBackend(model)
    feats = torch_backend.encode_image(image).expand(3)
    memory = partly_masked_bank()
    ref = torch_backend.attend_memory(feats, memory)
    out = run[contract.MEMORY_ATTENTION](
        vision_feats=feats.vision_feats,
        mem_feats=memory.feats,
        mem_t_pos=memory.t_pos,
        mem_valid=memory.valid,
        obj_ptrs=memory.ptrs,
        ptr_t_diff=memory.ptr_t_diff,
        ptr_valid=memory.ptr_valid,
    )["pix_feat"]
    close("memory_attention.pix_feat (B=3, partly masked)", out, ref)


def decoder_inputs(n: int, has_mask: list[float], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    b = len(has_mask)
    labels = torch.tensor([1, 0, 2, 3, -1], dtype=torch.int32)[torch.arange(b * n) % 5].reshape(b, n)
    return dict(
        pix_feat=torch.randn(b, 256, H, H, generator=gen),
        high_res_0=torch.randn(b, 32, 4 * H, 4 * H, generator=gen),
        high_res_1=torch.randn(b, 64, 2 * H, 2 * H, generator=gen),
        point_coords=torch.rand(b, n, 2, generator=gen) * SIZE,
        point_labels=labels,
        mask_input=5 * torch.randn(b, 1, 4 * H, 4 * H, generator=gen),
        has_mask_input=torch.tensor(has_mask),
    )


@pytest.mark.parametrize(
    "n, has_mask", [(1, [0.0]), (3, [1.0, 1.0]), (3, [1.0, 0.0, 1.0])], ids=["N1-no-mask", "N3-mask", "N3-mixed-B3"]
)
def test_mask_decoder(model, run, n, has_mask):
    """All outputs equal ``decode_all``, per object with or without its mask prompt."""
    x = decoder_inputs(n, has_mask)
    out = run[contract.MASK_DECODER](**x)
    with torch.no_grad():
        args = (x["pix_feat"], [x["high_res_0"], x["high_res_1"]], x["point_coords"], x["point_labels"])
        with_mask, without = model.decode_all(*args, x["mask_input"]), model.decode_all(*args, None)
    use = x["has_mask_input"].bool()
    for field, name in [
        ("masks", "masks"),
        ("ious", "ious"),
        ("obj_ptrs", "obj_ptrs"),
        ("object_score_logits", "object_score_logits"),
    ]:
        a, b = getattr(with_mask, field), getattr(without, field)
        ref = torch.where(use.view(-1, *[1] * (a.ndim - 1)), a, b)
        close(f"mask_decoder[N={n}, mask={has_mask}].{name}", out[name], ref)


def test_memory_encoder_mixed_batch(model, run):
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
    close("memory_encoder.maskmem_features (B=3, mixed)", out, ref)


def test_mask_downsample_and_mask_as_output(model, exported, run, frames):
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 60:180, 40:200] = 1.0
    out = run[contract.MASK_DOWNSAMPLE](mask=mask)["mask_input"]
    with torch.no_grad():
        close("mask_downsample.mask_input", out, model.mask_downsample(mask))
    image = preprocess(frames[0], SIZE, torch.device("cpu"))
    ours_backend, ref_backend = OnnxRuntimeBackend(exported), TorchBackend(model)
    feats = ref_backend.encode_image(image)
    ours = ours_backend.mask_as_output(feats.vision_feats, feats.high_res, mask)
    ref = ref_backend.mask_as_output(feats.vision_feats, feats.high_res, mask)
    close("backend.mask_as_output.obj_ptr", ours.obj_ptr, ref.obj_ptr)
    for field in ("high_res_masks", "low_res_masks", "object_score_logits"):
        assert torch.equal(getattr(ours, field), getattr(ref, field)), field


# -------------------------------------------------------------------------- manifest
def test_manifest_refuses_modified_missing_and_corrupt_files(exported, tmp_path):
    copy = tmp_path / "onnx"
    shutil.copytree(exported, copy)
    target = copy / "memory_encoder.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    target.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="memory_encoder.onnx was modified after export"):
        read_manifest(copy)
    with pytest.raises(ManifestError, match="was modified"):
        OnnxRuntimeBackend(copy)
    target.unlink()
    with pytest.raises(ManifestError, match="memory_encoder.onnx is listed in manifest.json but missing"):
        read_manifest(copy)
    manifest = copy / contract.MANIFEST_FILE
    manifest.write_text(manifest.read_text()[:200])
    with pytest.raises(ManifestError, match="manifest.json is corrupt"):
        read_manifest(copy)
    manifest.unlink()
    with pytest.raises(ManifestError, match="no manifest.json in"):
        read_manifest(copy)


def test_tracker_with_another_bank_size_is_refused(exported, frames):
    backend = OnnxRuntimeBackend(exported)
    assert backend.max_cond_frames == 4
    tracker = Sam2Tracker(backend, max_objects=2, max_cond_frames=2)
    tracker.track(frames[0])
    tracker.add_points(1, *CLICK_1)
    with pytest.raises(ValueError, match=r"max_cond_frames=4\)"):
        tracker.track(frames[1])


# -------------------------------------------------------------------------- tracking
def track(backend, frames) -> dict[int, dict[int, torch.Tensor]]:
    """The streaming scenario; returns {frame: {object id: logits at frame resolution}}."""
    tracker = Sam2Tracker(backend, max_objects=4, max_cond_frames=4, fill_hole_area=0)
    out = {}
    for f, frame in enumerate(frames):
        result = tracker.track(frame)
        if f == 0:
            tracker.add_points(1, *CLICK_1)
            result = tracker.add_box(2, BOX_2)
        elif f == 6:
            result = tracker.add_points(1, *CORRECTION_1)
        elif f == 10:
            result = tracker.add_points(3, *CLICK_3)
        out[f] = {oid: result.logits[i].clone() for i, oid in enumerate(result.object_ids)}
    return out


def test_tracking_matches_torch_backend(model, exported, frames):
    """Bedroom, 20 frames: two objects at frame 0, a correction at 6, a third object at 10."""
    expected = track(TorchBackend(model), frames)
    got = track(OnnxRuntimeBackend(exported), frames)
    worst_iou, worst_rel, nontrivial = 1.0, 0.0, 0
    for f in expected:
        assert sorted(got[f]) == sorted(expected[f])
        for oid, ref in expected[f].items():
            a, b = got[f][oid] > 0, ref > 0
            union = (a | b).sum().item()
            iou = (a & b).sum().item() / union if union else 1.0
            assert iou >= TRACK_IOU, f"frame {f}, object {oid}: IoU {iou:.4f} < {TRACK_IOU}"
            worst_iou = min(worst_iou, iou)
            worst_rel = max(worst_rel, ((got[f][oid] - ref).norm() / ref.norm()).item())
            nontrivial += 0 < b.sum().item() < b.numel()
    assert sorted(got[NUM_FRAMES - 1]) == [1, 2, 3]
    assert nontrivial >= len(expected) * 2, "masks are empty or full: the comparison would prove nothing"
    RECORDED[f"onnxruntime tracker[bedroom {NUM_FRAMES}f].1 - worst mask IoU"] = (
        1 - worst_iou,
        worst_rel,
        1 - TRACK_IOU,
    )


def test_cli_tracks_with_the_onnxruntime_backend(exported, data_dir, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:05d}.jpg").symlink_to(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")
    out = tmp_path / "out"
    rc = cli_main(
        [
            "track",
            str(folder),
            "--out",
            str(out),
            "--backend",
            "onnxruntime",
            "--engines",
            str(exported),
            "--point",
            "1:300,220",
            "--box",
            "2:560,60,820,420",
            "--no-overlay",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "onnxruntime" and summary["model"] == MODEL and summary["image_size"] == SIZE
    assert len(list((out / "masks").glob("*.png"))) == 3
    assert cli_main(["track", str(folder), "--out", str(out), "--backend", "onnxruntime"]) == 2
    assert (
        cli_main(
            [
                "track",
                str(folder),
                "--out",
                str(out),
                "--backend",
                "onnxruntime",
                "--engines",
                str(exported),
                "--random-weights",
            ]
        )
        == 2
    )


# ------------------------------------------------------- TensorRT layer pinning (no TensorRT)
@functools.lru_cache(maxsize=8)
def parsed_layers(path: str) -> tuple:
    """:func:`parse_like_onnx_tensorrt` of the graph at ``path`` (each graph is parsed once per run)."""
    return tuple(parse_like_onnx_tensorrt(onnx.load(path, load_external_data=False)))


def parse_like_onnx_tensorrt(model: onnx.ModelProto) -> list:
    """The layers TensorRT's ONNX parser makes of ``model``, named as onnx-tensorrt names them.

    ``ImporterContext::registerLayer``: a ``Constant`` node adds no layer; an initializer a
    node reads becomes a constant layer named after it; the node's own layer is named by
    ``getNodeName`` (its name, else ``node_of_<first output>``), made unique with a numbered
    suffix. Output types as ONNX shape inference gives them.
    """
    from tests.test_tensorrt import FakeLayer

    inferred = onnx.shape_inference.infer_shapes(model).graph
    kinds = {
        onnx.TensorProto.FLOAT: "FLOAT",
        onnx.TensorProto.FLOAT16: "HALF",
        onnx.TensorProto.INT64: "INT64",
        onnx.TensorProto.INT32: "INT32",
        onnx.TensorProto.BOOL: "BOOL",
    }
    types_ = {
        v.name: kinds.get(v.type.tensor_type.elem_type, "INT32") for v in (*inferred.value_info, *inferred.output)
    }
    inits = {t.name for t in model.graph.initializer}
    layers, used, made = [], set(), set()

    def unique(base: str) -> str:
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        for i in node.input:
            if i in inits and i not in made:
                made.add(i)
                layers.append(FakeLayer(unique(i), "CONSTANT"))
        name = unique(node.name or f"node_of_{node.output[0]}")
        layers.append(FakeLayer(name, "ELEMENTWISE", outputs=tuple((o, types_.get(o, "INT32")) for o in node.output)))
    return layers


def fake_tensorrt(exported_dir: Path, folded: set[str] = frozenset()):
    """A ``tensorrt`` stand-in: the parser above (less the ``folded`` node names), a builder that records
    its configuration, engines described from their ONNX graphs."""
    from tests.test_tensorrt import FakeTrt

    class Network:
        def __init__(self) -> None:
            self.layers: list = []
            self.path = ""

        @property
        def num_layers(self) -> int:
            return len(self.layers)

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network, logger) -> None:
            self.network = network

        def parse_from_file(self, path: str) -> bool:
            self.network.path = path
            self.network.layers = [la for la in parsed_layers(path) if la.name not in folded]
            return True

    class Engine:
        def __init__(self, model: onnx.ModelProto) -> None:
            inputs = [
                (t.name, "INPUT", [d.dim_value or -1 for d in t.type.tensor_type.shape.dim]) for t in model.graph.input
            ]
            outputs = [
                (t.name, "OUTPUT", [d.dim_value or -1 for d in t.type.tensor_type.shape.dim])
                for t in model.graph.output
            ]
            self.io = {n: (mode, shape) for n, mode, shape in inputs + outputs}
            self.num_io_tensors = len(self.io)

        def get_tensor_name(self, i):
            return list(self.io)[i]

        def get_tensor_mode(self, name):
            return self.io[name][0]

        def get_tensor_dtype(self, name):
            return FakeTrt.DataType.FLOAT

        def get_tensor_shape(self, name):
            return self.io[name][1]

        def get_tensor_profile_shape(self, name, profile):
            shape = [max(d, 1) for d in self.io[name][1]]
            return shape, shape, shape

    def deserialize(blob: bytes):
        return Engine(onnx.load(str(exported_dir / blob.decode()), load_external_data=False))

    class Logger:
        WARNING = VERBOSE = 0

        def __init__(self, severity) -> None:
            pass

    class Config:
        def __init__(self) -> None:
            self.flags: set = set()

        def create_timing_cache(self, data: bytes):
            return types.SimpleNamespace(serialize=lambda: b"")

        def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
            return True

        def set_memory_pool_limit(self, pool, size: int) -> None:
            pass

        def set_flag(self, flag) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag) -> None:
            self.flags.discard(flag)

        def add_optimization_profile(self, profile) -> None:
            pass

    def build(network, config) -> bytes:
        assert {"FP16", "OBEY_PRECISION_CONSTRAINTS"} <= config.flags
        return Path(network.path).name.encode()  # the "plan": which graph it was built from

    builder = types.SimpleNamespace(
        create_network=lambda flags: Network(),
        create_builder_config=Config,
        build_serialized_network=build,
        create_optimization_profile=lambda: types.SimpleNamespace(set_shape=lambda *shapes: None),
    )
    flags = types.SimpleNamespace(
        FP16="FP16", BF16="BF16", TF32="TF32", OBEY_PRECISION_CONSTRAINTS="OBEY_PRECISION_CONSTRAINTS"
    )
    return types.SimpleNamespace(
        __version__="10.3.0",
        Logger=Logger,
        OnnxParser=OnnxParser,
        TensorIOMode=FakeTrt.TensorIOMode,
        DataType=FakeTrt.DataType,
        LayerType=FakeTrt.LayerType,
        BuilderFlag=flags,
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        Builder=lambda logger: builder,
        Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=deserialize),
    )


def script_layer_names(script: str) -> dict[str, tuple[list[str], list[str]]]:
    """Per graph, the layer names of a trtexec script's --layerPrecisions and --layerOutputTypes."""
    found = {}
    for line in script.replace(" \\\n    ", " ").splitlines():
        if not line.startswith('"$TRTEXEC"'):
            continue
        args = dict(a.split("=", 1) for a in shlex.split(line)[1:] if "=" in a)
        lists = [
            [x.rsplit(":", 1)[0] for x in args.get(k, "").split(",") if x]
            for k in ("--layerPrecisions", "--layerOutputTypes")
        ]
        found[Path(args["--onnx"]).stem] = (lists[0], lists[1])
    return found


def test_trtexec_script_and_engines_json_pin_the_same_parser_layers(exported, tmp_path, monkeypatch, capsys):
    """One list of layer names: the trtexec script and engines.json (``--adopt`` of trtexec's engines, and
    the builder's own) agree, and each is a node the ONNX parser turns into a float layer of that name."""
    from export import engines
    from sam2_ros.backends import tensorrt as rt
    from tests.test_tensorrt import ENV, FakeTrt

    out = tmp_path / "engines"
    script = script_layer_names(
        engines.write_trtexec_script(engines.prepare(exported, out, "fp16", timing_cache=None)).read_text()
    )
    assert sorted(script) == sorted(contract.GRAPH_NAMES)
    for graph in contract.GRAPH_NAMES:
        (out / f"{graph}.engine").write_bytes(f"{graph}.onnx".encode())  # what trtexec.sh would build
    monkeypatch.setattr(rt, "runtime_environment", lambda device="cuda": ENV)

    def adopt(folded=frozenset()) -> dict[str, list[str]]:
        monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(exported, folded))
        engines.adopt_engines(engines.prepare(exported, out, "fp16", timing_cache=None))
        manifest = json.loads((out / "engines.json").read_text())
        return {g: manifest["engines"][g]["fp32_layers"] for g in contract.GRAPH_NAMES}

    recorded = adopt()
    built = json.loads(
        engines.build_engines(
            engines.prepare(exported, tmp_path / "built", "fp16", timing_cache=None), verbose=True
        ).read_text()
    )
    assert {g: built["engines"][g]["fp32_layers"] for g in contract.GRAPH_NAMES} == recorded
    job = engines.prepare(exported, out, "fp16", timing_cache=None)
    for graph in contract.GRAPH_NAMES:
        precisions, output_types = script[graph]
        assert precisions == output_types == recorded[graph] == list(job.plans[graph].fp32_layers), graph
        model = onnx.load(str(exported / f"{graph}.onnx"), load_external_data=False)
        nodes = {n.name: n for n in model.graph.node}
        layers = {la.name: la for la in parsed_layers(str(exported / f"{graph}.onnx"))}
        for name in precisions:
            assert name in nodes and nodes[name].op_type != "Constant", (graph, name)
            layer = layers[name]  # a layer of exactly that name, with float outputs
            assert layer.type != "CONSTANT" and all(t.dtype.name == "FLOAT" for t in layer._outs), (graph, name)
        # The Python builder pins the same layers in the same parsed network.
        network = types.SimpleNamespace(num_layers=len(layers), get_layer=list(layers.values()).__getitem__)
        assert engines.constrain_fp32(FakeTrt, network, job.plans[graph].fp32_layers) == precisions
    assert all(len(recorded[g]) > 0 for g in contract.GRAPH_NAMES if g != "mask_downsample")

    # A node the parser does not turn into a layer of its name is not claimed as pinned.
    gone = recorded["mask_decoder"][0]
    capsys.readouterr()
    assert adopt({gone})["mask_decoder"] == recorded["mask_decoder"][1:]
    assert (
        f"mask_decoder: 1 of {len(recorded['mask_decoder'])} layers planned for fp32 are not in TensorRT's "
        f"network ({gone}); trtexec leaves them in reduced precision" in capsys.readouterr().err
    )
