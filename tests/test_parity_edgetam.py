"""Module parity of our EdgeTAM with Meta's (``edgetam-dimos==1.0.1``) on identical random weights.

The reference runs in its own process (:mod:`tests.edgetam_reference`): it builds Meta's model
from ``configs/edgetam.yaml`` with seeded random weights (every parameter, bias, norm and
BatchNorm statistic non-trivial), hands over its state_dict, which we load strictly, and computes
the reference outputs on the same inputs. All reference calls of the default run share one
subprocess (module-scoped fixture, about 20-30 s on 2 cores).

Compared (fp32, relative L2 <= 1e-4; measured 0 for the encoder and the perceiver, ~2e-7 for
memory attention, whose RoPE is real arithmetic here and complex upstream):

* image encoder: the RepViT trunk's four stage outputs, the three FPN levels and their position
  encodings (256 px; 1024 px in the slow test);
* spatial perceiver: global + 2-D latents and their position, two objects in one batch (Meta's
  own perceiver can only run them one at a time);
* memory encoder + perceiver (``encode_memory`` vs ``SAM2Base._encode_new_memory``);
* memory attention: two layers of RoPE self-attention and RoPEAttentionv2 cross-attention to
  three perceiver-compressed memory frames plus object-pointer tokens, at 256 px (query and
  key grids both 16 x 16) and 512 px (query grid 32 x 32, key grid 16 x 16).

Each is shown to fail on a deliberately wrong variant (rel L2 far above 1e-4): the token mixer
without its identity branch, position not added to the perceiver's values, RoPE on the keys'
global latents too, and keys rotated on the query grid instead of their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from sam2_ros.model import build_sam2, get_config
from sam2_ros.model import perceiver as perceiver_module
from sam2_ros.model.repvit import RepVggDw
from sam2_ros.model.rope import RoPEAttentionV2, axial_rope_angles
from tests.edgetam_reference import require_reference, run_reference_batch
from tests.parity import RECORDED

REL_TOL = 1e-4
SEED = 0
NUM_MEM, NUM_PTR_TOKENS = 3, 16  # three memory frames (512 latents each) + 4 pointers split into 4 tokens


def rel_l2(ours: Tensor, theirs: Tensor) -> float:
    assert ours.shape == theirs.shape, f"shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    a, b = ours.detach().double(), theirs.detach().double()
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def assert_close(name: str, ours: Tensor, theirs: Tensor) -> float:
    rel = rel_l2(ours, theirs)
    max_abs = (ours.double() - theirs.double()).abs().max().item()
    RECORDED[f"edgetam (vs edgetam-dimos, rel L2 tol): {name}"] = (max_abs, rel, REL_TOL)
    assert rel <= REL_TOL, f"{name}: relative L2 {rel:.3e} > {REL_TOL:.0e}"
    return rel


def assert_wrong(name: str, ours: Tensor, theirs: Tensor) -> float:
    rel = rel_l2(ours, theirs)
    assert rel > 10 * REL_TOL, f"{name}: a deliberately wrong variant is within tolerance (rel L2 {rel:.3e})"
    print(f"wrong variant: {name}: rel L2 {rel:.3e}")  # shown with -s; quoted in the docs
    return rel


def _inputs(image_size: int, seed: int = 1) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    side = image_size // 16
    hw, mem = side * side, NUM_MEM * 512 + NUM_PTR_TOKENS
    return {
        "images": torch.randn(2, 3, image_size, image_size, generator=g),
        "mem_feats": torch.randn(2, 64, side, side, generator=g),
        "pix_feat": torch.randn(2, 256, side, side, generator=g),
        "masks": 8 * torch.randn(2, 1, image_size, image_size, generator=g),
        "obj_scores": torch.tensor([[2.0], [-1.0]]),
        "curr": torch.randn(hw, 2, 256, generator=g),
        "curr_pos": torch.randn(hw, 2, 256, generator=g),
        "memory": torch.randn(mem, 2, 64, generator=g),
        "memory_pos": torch.randn(mem, 2, 64, generator=g),
    }


def _memory_attention_call(size: int, x: dict[str, Tensor]) -> tuple[str, dict]:
    return (
        "memory_attention",
        dict(
            seed=SEED,
            image_size=size,
            curr=x["curr"],
            curr_pos=x["curr_pos"],
            memory=x["memory"],
            memory_pos=x["memory_pos"],
            num_obj_ptr_tokens=NUM_PTR_TOKENS,
            num_spatial_mem=NUM_MEM,
        ),
    )


#: A reference function added from outside the worker (the ``extra`` hook other test files use).
EXTRA = """
import torch
from tests.edgetam_reference_worker import build_reference_model, reference_function


@reference_function
def video_predictor_facts(seed, image_size):
    video = build_reference_model(seed, image_size, video=True)
    image = build_reference_model(seed, image_size)
    sv, si = video.state_dict(), image.state_dict()
    same = sv.keys() == si.keys() and all(torch.equal(sv[k], si[k]) for k in si)
    return {"class": type(video).__name__, "same_weights": same, "fill_hole_area": int(video.fill_hole_area)}
"""


@pytest.fixture(scope="module")
def ref256(tmp_path_factory):
    """Our model with the reference's weights, the inputs and all reference outputs (one subprocess)."""
    require_reference()
    extra = tmp_path_factory.mktemp("edgetam_extra") / "video_facts.py"
    extra.write_text(EXTRA)
    size = 256
    x = _inputs(size)
    model = build_sam2("edgetam", image_size=size)
    mem_pos = model.memory_encoder.position_encoding(x["mem_feats"])
    x512 = _inputs(512, seed=2)
    state, enc, perc, encmem, attn, attn512, video = run_reference_batch(
        [
            ("state_dict", dict(seed=SEED, image_size=size)),
            ("image_encoder", dict(seed=SEED, image_size=size, images=x["images"])),
            ("perceiver", dict(seed=SEED, image_size=size, feats=x["mem_feats"], pos=mem_pos)),
            (
                "encode_memory",
                dict(
                    seed=SEED,
                    image_size=size,
                    pix_feat=x["pix_feat"],
                    masks=x["masks"],
                    object_score_logits=x["obj_scores"],
                    is_mask_from_pts=False,
                ),
            ),
            _memory_attention_call(size, x),
            _memory_attention_call(512, x512),  # a second reference build (same seed) in the same process
            ("video_predictor_facts", dict(seed=SEED, image_size=size)),
        ],
        extra=[extra],
    )
    model.load_state_dict(state["state_dict"], strict=True)
    r = {"model": model, "x": x, "mem_pos": mem_pos, "state": state, "enc": enc, "perc": perc}
    r["x512"], r["attn512"], r["video"] = x512, attn512, video
    return r, encmem, attn


def test_reference_layout_is_the_stored_layout(ref256):
    stored = json.loads((Path(__file__).parent / "layouts" / "edgetam.json").read_text())
    state = ref256[0]["state"]
    assert {k: list(v.shape) for k, v in state["state_dict"].items()} == stored
    assert state["channel_list"] == [384, 192, 96, 48]


def test_extra_hook_and_video_predictor_weights(ref256):
    """Functions from other files run in the reference process; the video predictor shares the weights."""
    video = ref256[0]["video"]
    assert video["class"] == "SAM2VideoPredictor" and video["same_weights"]
    assert video["fill_hole_area"] == get_config("edgetam").fill_hole_area == 8


@torch.no_grad()
def test_image_encoder_per_level(ref256, monkeypatch):
    r, _, _ = ref256
    model, images, ref = r["model"], r["x"]["images"], r["enc"]
    trunk = model.image_encoder.trunk(images)
    out = model.image_encoder(images)
    for i, (a, b) in enumerate(zip(trunk, ref["trunk"], strict=True)):
        assert_close(f"RepViT stage {i} (stride {4 * 2**i})", a, b)
    for i, (a, b) in enumerate(zip(out["backbone_fpn"], ref["backbone_fpn"], strict=True)):
        assert_close(f"FPN level {i} (stride {4 * 2**i})", a, b)
    for i, (a, b) in enumerate(zip(out["vision_pos_enc"], ref["vision_pos_enc"], strict=True)):
        assert_close(f"FPN position {i}", a, b)
    # The features the heads receive: stride-16 map + the decoder's high-resolution projections.
    feats = model.encode_image(images)
    assert_close("encode_image stride-16 features", feats.vision_feats, ref["vision_features"])

    # Wrong variant: RepVGG token mixer without its identity branch -> every level is off.
    monkeypatch.setattr(RepVggDw, "forward", lambda self, x: self.conv(x) + self.conv1(x))
    wrong = model.image_encoder(images)["backbone_fpn"]
    for i, (a, b) in enumerate(zip(wrong, ref["backbone_fpn"], strict=True)):
        assert_wrong(f"FPN level {i} without the token mixer's identity", a, b)


@torch.no_grad()
def test_perceiver_batched(ref256, monkeypatch):
    r, _, _ = ref256
    model, feats, pos, ref = r["model"], r["x"]["mem_feats"], r["mem_pos"], r["perc"]
    latents, latents_pos = model.spatial_perceiver(feats, pos)
    assert_close("perceiver latents (global + 2-D), 2 objects batched", latents, ref["latents"])
    assert_close("perceiver latent position", latents_pos, ref["pos"])

    # Wrong variant: position added to the keys only, not to the values.
    def keys_only(self, latents, x, pos=None):
        latents, x = self.norm_latents(latents), self.norm_x(x)
        q = perceiver_module._heads(self.to_q(latents), self.heads)
        k, v = (perceiver_module._heads(t, self.heads) for t in self.to_kv(x).chunk(2, dim=-1))
        if pos is not None:
            k = k + perceiver_module._heads(pos, self.heads)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.to_out(perceiver_module._merge(out))

    monkeypatch.setattr(perceiver_module.PerceiverAttention, "forward", keys_only)
    wrong, _ = model.spatial_perceiver(feats, pos)
    assert_wrong("perceiver without position on values", wrong[:, :256], ref["latents"][:, :256])


@torch.no_grad()
def test_encode_memory(ref256):
    r, ref, _ = ref256
    model, x = r["model"], r["x"]
    feats, pos = model.encode_memory(x["pix_feat"], x["masks"], x["obj_scores"], is_mask_from_pts=False)
    assert_close("encode_memory (memory encoder + perceiver) latents", feats, ref["features"])
    assert_close("encode_memory position", pos.expand_as(ref["pos"]), ref["pos"])
    assert_close("memory_pos_enc()", model.memory_pos_enc().expand_as(ref["pos"]), ref["pos"])


def _run_memory_attention(model, x: dict[str, Tensor]) -> Tensor:
    return model.memory_attention(
        curr=x["curr"],
        curr_pos=x["curr_pos"],
        memory=x["memory"],
        memory_pos=x["memory_pos"],
        num_obj_ptr_tokens=NUM_PTR_TOKENS,
    )


@torch.no_grad()
def test_memory_attention_256(ref256, monkeypatch):
    r, _, ref = ref256
    model, x = r["model"], r["x"]
    assert_close(
        "memory attention (256 px: 16x16 queries, 3 frames + pointers)", _run_memory_attention(model, x), ref["out"]
    )

    # Wrong variant: rotate every memory token of a frame (the global latents too).
    for layer in model.memory_attention.layers:
        attn = layer.cross_attn_image
        grid = axial_rope_angles(attn.head_dim, 16, 16)
        all_rot = torch.cat((grid, grid))
        monkeypatch.setattr(attn, "rope_k_cos", all_rot.cos())
        monkeypatch.setattr(attn, "rope_k_sin", all_rot.sin())
    assert_wrong("memory attention with RoPE on the global latents", _run_memory_attention(model, x), ref["out"])


@torch.no_grad()
def test_memory_attention_512_query_and_key_grids(ref256, monkeypatch):
    """At 512 px the query grid (32 x 32) differs from the key grid (16 x 16)."""
    r = ref256[0]
    x, ref = r["x512"], r["attn512"]
    model = build_sam2("edgetam", image_size=512)
    model.load_state_dict(r["state"]["state_dict"], strict=True)  # weights do not depend on the size
    assert_close("memory attention (512 px: 32x32 queries, 16x16 keys)", _run_memory_attention(model, x), ref["out"])

    # Wrong variant: keys rotated on the query grid (first 256 positions of the 32 x 32 grid).
    for layer in model.memory_attention.layers:
        attn = layer.cross_attn_image
        assert isinstance(attn, RoPEAttentionV2)
        q_grid = axial_rope_angles(attn.head_dim, 32, 32)[:256]
        prefix = torch.zeros(attn.k_prefix_tokens, q_grid.shape[1])
        monkeypatch.setattr(attn, "rope_k_cos", torch.cat((prefix.cos(), q_grid.cos())))
        monkeypatch.setattr(attn, "rope_k_sin", torch.cat((prefix.sin(), q_grid.sin())))
    assert_wrong("memory attention with the query grid for keys", _run_memory_attention(model, x), ref["out"])


@pytest.mark.slow
@torch.no_grad()
def test_image_encoder_and_memory_attention_1024():
    """Meta's released size: 64 x 64 queries, RoPE tables built at 1024 (no recomputation)."""
    require_reference()
    size = 1024
    g = torch.Generator().manual_seed(3)
    images = torch.randn(1, 3, size, size, generator=g)
    x = _inputs(256, seed=3)
    x["curr"] = torch.randn(64 * 64, 2, 256, generator=g)
    x["curr_pos"] = torch.randn(64 * 64, 2, 256, generator=g)
    state, enc, attn = run_reference_batch(
        [
            ("state_dict", dict(seed=SEED, image_size=size)),
            ("image_encoder", dict(seed=SEED, image_size=size, images=images)),
            _memory_attention_call(size, x),
        ]
    )
    model = build_sam2("edgetam", image_size=size)
    model.load_state_dict(state["state_dict"], strict=True)
    out = model.image_encoder(images)
    for i, (a, b) in enumerate(zip(out["backbone_fpn"], enc["backbone_fpn"], strict=True)):
        assert_close(f"FPN level {i} at 1024 px", a, b)
    assert_close("memory attention at 1024 px", _run_memory_attention(model, x), attn["out"])
