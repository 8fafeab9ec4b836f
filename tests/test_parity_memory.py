"""Parity of the memory attention and memory encoder with Meta's ``sam2==1.1.0``.

Both sides are built with the SAM 2.1 tiny config (``configs/sam2.1/sam2.1_hiera_t.yaml``),
the official module is randomised, its weights are loaded strictly into ours and the outputs
are compared. Memory attention is checked at the 1024-input feature grid (64 x 64, the
precomputed RoPE tables) and at 512 (32 x 32, tables recomputed), with 1/3/7 spatial memory
frames plus object-pointer tokens and several objects batched. A padded fixed-capacity bank with
``memory_mask`` must reproduce the official result on the unpadded banks, and deliberately
wrong variants must fail the same tolerances (so the tests can fail).

Tolerances (fp32): our RoPE is real arithmetic where the official multiplies complex numbers,
and attention may take a different SDPA kernel (with/without mask), so results agree to
rounding, not bitwise. Measured differences are ~3e-6 on outputs of magnitude ~5 after four
layers of 2048-wide MLPs and attention over up to ~29k keys; ``ATOL_ATTN = 1e-4`` leaves ~30x
headroom for other BLAS/SDPA kernels, while every wrong variant below misses it by at least
an order of magnitude (measured 4e-3 .. 5.5). The memory encoder (convs + two ConvNeXt blocks)
uses the same ops in the same order (measured bit-equal on CPU); 1e-4 allows other conv
kernels. Its sine position encoding is closed-form and gets a tighter bound.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import Tensor

from sam2_ros.model import rope as rope_module
from sam2_ros.model.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2_ros.model.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2_ros.model.position_encoding import PositionEmbeddingSine
from sam2_ros.model.rope import RoPEAttention, axial_rope_angles, rotate_pairs
from tests.parity import assert_differs, assert_parity, load_same_weights, official, randomize_

ATOL_ATTN = 1e-4
ATOL_ENC = 1e-4
ATOL_POS = 1e-5

D_MODEL, MEM_DIM = 256, 64
PTR_TOKENS = 16  # 4 object pointers of 256 channels, each split into 4 tokens of 64


# --------------------------------------------------------------------------- builders
def _memory_attention(attention_cls, layer_cls, model_cls, rope_theta: float = 1e4):
    """The SAM 2.1 tiny memory attention from the given classes (official or ours)."""
    self_attn = attention_cls(
        embedding_dim=D_MODEL,
        num_heads=1,
        downsample_rate=1,
        dropout=0.1,
        rope_theta=rope_theta,
        feat_sizes=(64, 64),
    )
    cross_attn = attention_cls(
        embedding_dim=D_MODEL,
        num_heads=1,
        downsample_rate=1,
        dropout=0.1,
        kv_in_dim=MEM_DIM,
        rope_theta=rope_theta,
        rope_k_repeat=True,
        feat_sizes=(64, 64),
    )
    layer = layer_cls(
        activation="relu",
        cross_attention=cross_attn,
        d_model=D_MODEL,
        dim_feedforward=2048,
        dropout=0.1,
        pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        self_attention=self_attn,
    )
    return model_cls(d_model=D_MODEL, pos_enc_at_input=True, layer=layer, num_layers=4).eval()


@functools.cache
def _official_attention():
    official()
    from sam2.modeling.memory_attention import MemoryAttention as OMA
    from sam2.modeling.memory_attention import MemoryAttentionLayer as OMAL
    from sam2.modeling.sam.transformer import RoPEAttention as ORoPE

    return randomize_(_memory_attention(ORoPE, OMAL, OMA), seed=0)


def _ours_attention(attention_cls=RoPEAttention, rope_theta: float = 1e4) -> MemoryAttention:
    ours = _memory_attention(attention_cls, MemoryAttentionLayer, MemoryAttention, rope_theta)
    load_same_weights(ours, _official_attention())
    return ours


def _inputs(side: int, n_mem: int, batch: int, ptr_tokens: int, seed: int = 1) -> dict[str, Tensor]:
    """Sequence-first inputs as SAM2Base passes them: HW x B x 256 and M x B x 64."""
    g = torch.Generator().manual_seed(seed)
    hw, m = side * side, n_mem * side * side + ptr_tokens
    return {
        "curr": torch.randn(hw, batch, D_MODEL, generator=g),
        "curr_pos": torch.randn(hw, batch, D_MODEL, generator=g),
        "memory": torch.randn(m, batch, MEM_DIM, generator=g),
        "memory_pos": torch.randn(m, batch, MEM_DIM, generator=g),
    }


@functools.cache
def _case(side: int, n_mem: int, batch: int) -> tuple[dict[str, Tensor], Tensor]:
    """Inputs and the official output, cached so negative controls reuse them."""
    inputs = _inputs(side, n_mem, batch, PTR_TOKENS)
    with torch.no_grad():
        return inputs, _official_attention()(**inputs, num_obj_ptr_tokens=PTR_TOKENS)


def _run(model: MemoryAttention, inputs: dict[str, Tensor], **kwargs) -> Tensor:
    with torch.no_grad():
        return model(**inputs, **kwargs)


# --------------------------------------------------------------------------- memory attention
def test_state_dict_matches_official_keys():
    ours, theirs = _ours_attention().state_dict(), _official_attention().state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize(
    ("side", "n_mem", "batch"),
    [
        (64, 1, 1),
        (32, 1, 2),
        (32, 3, 2),
        (32, 7, 2),
        pytest.param(64, 1, 2, marks=pytest.mark.slow),
        pytest.param(64, 3, 2, marks=pytest.mark.slow),
        pytest.param(64, 7, 2, marks=pytest.mark.slow),
    ],
)
def test_memory_attention_parity(side: int, n_mem: int, batch: int):
    inputs, theirs = _case(side, n_mem, batch)
    ours = _run(_ours_attention(), inputs, num_obj_ptr_tokens=PTR_TOKENS)
    assert_parity(f"memory_attention[{n_mem} mem + {PTR_TOKENS} ptr @{side} x{batch}].out", ours, theirs, ATOL_ATTN)


def test_rotate_pairs_matches_complex_multiply():
    """The real-arithmetic rotation is the official complex multiply, pair by pair."""
    official()
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 1, 1024, 256, generator=g), torch.randn(2, 1, 3 * 1024, 256, generator=g)
    q_ref, k_ref = apply_rotary_enc(q, k, compute_axial_cis(256, 32, 32), repeat_freqs_k=True)
    angles = axial_rope_angles(256, 32, 32)
    cos, sin = angles.cos(), angles.sin()
    assert_parity("rope[@32].q", rotate_pairs(q, cos, sin), q_ref, 1e-5)
    k_ours = rotate_pairs(k.reshape(2, 1, 3, 1024, 256), cos, sin).reshape(k.shape)
    assert_parity("rope[3 mem @32].k", k_ours, k_ref, 1e-5)


# Padded fixed-capacity bank: 7 frame slots, 8 pointer slots (32 tokens); per object, which
# frame / pointer slots hold real data. Invalid slots carry large garbage that must be ignored.
CAP_FRAMES, CAP_PTRS, TOKENS_PER_PTR = 7, 8, 4
VALID = [([0, 3, 6], [1, 4]), ([1, 2, 4, 5, 6], [0, 2, 3, 7])]


def _padded_bank(side: int) -> tuple[dict[str, Tensor], Tensor, list[dict[str, Tensor]]]:
    """A padded batch, its B x M mask, and each object's unpadded (B=1) inputs."""
    hw = side * side
    inputs = _inputs(side, CAP_FRAMES, len(VALID), CAP_PTRS * TOKENS_PER_PTR, seed=5)
    mask = torch.zeros(len(VALID), CAP_FRAMES * hw + CAP_PTRS * TOKENS_PER_PTR, dtype=torch.bool)
    unpadded = []
    for b, (frames, ptrs) in enumerate(VALID):
        spatial = [torch.arange(f * hw, (f + 1) * hw) for f in frames]
        pointer = [CAP_FRAMES * hw + torch.arange(p * TOKENS_PER_PTR, (p + 1) * TOKENS_PER_PTR) for p in ptrs]
        keep = torch.cat(spatial + pointer)
        mask[b, keep] = True
        unpadded.append(
            {
                "curr": inputs["curr"][:, b : b + 1],
                "curr_pos": inputs["curr_pos"][:, b : b + 1],
                "memory": inputs["memory"][keep, b : b + 1],
                "memory_pos": inputs["memory_pos"][keep, b : b + 1],
            }
        )
        for key in ("memory", "memory_pos"):  # garbage in the padding
            inputs[key][~mask[b], b] *= 10.0
    return inputs, mask, unpadded


def test_padded_bank_with_mask_equals_unpadded():
    side = 16  # the grid size is irrelevant to masking; 16 x 16 keeps 7 padded frames cheap
    padded, mask, unpadded = _padded_bank(side)
    model = _ours_attention()
    ours = _run(model, padded, num_obj_ptr_tokens=CAP_PTRS * TOKENS_PER_PTR, memory_mask=mask)
    unmasked = _run(model, padded, num_obj_ptr_tokens=CAP_PTRS * TOKENS_PER_PTR)
    for b, (frames, ptrs) in enumerate(VALID):
        n_ptr = len(ptrs) * TOKENS_PER_PTR
        theirs = _run(_official_attention(), unpadded[b], num_obj_ptr_tokens=n_ptr)
        cap_ptr = CAP_PTRS * TOKENS_PER_PTR
        name = f"memory_attention[masked {len(frames)}/{CAP_FRAMES} mem + {n_ptr}/{cap_ptr} ptr @{side}].out"
        assert_parity(name, ours[:, b : b + 1], theirs, ATOL_ATTN)
        # Negative control: the same padded bank without the mask attends to the garbage.
        assert_differs(name + " without mask", unmasked[:, b : b + 1], theirs, ATOL_ATTN)


# --------------------------------------------------------------------------- negative controls
class _NoKRepeat(RoPEAttention):
    """Wrong: memory frames continue the grid (rows 0..n*side) instead of repeating its angles."""

    def apply_rope(self, q: Tensor, k: Tensor, num_k_exclude_rope: int = 0) -> tuple[Tensor, Tensor]:
        cos, sin = self.rope_tables(q.shape[-2], q.device)
        side, num_k_rope = math.isqrt(q.shape[-2]), k.shape[-2] - num_k_exclude_rope
        angles = axial_rope_angles(self.head_dim, side, num_k_rope // side, self.rope_theta)
        k_rope = rotate_pairs(k[:, :, :num_k_rope], angles.cos(), angles.sin())
        return rotate_pairs(q, cos, sin), torch.cat((k_rope, k[:, :, num_k_rope:]), dim=-2)


class _RopeOnPointers(RoPEAttention):
    """Wrong: ignores ``num_k_exclude_rope`` and rotates the object pointers as grid tokens too."""

    def apply_rope(self, q: Tensor, k: Tensor, num_k_exclude_rope: int = 0) -> tuple[Tensor, Tensor]:
        q, k = super().apply_rope(q, k, num_k_exclude_rope)
        if num_k_exclude_rope:
            cos, sin = self.rope_tables(q.shape[-2], q.device)
            ptr = rotate_pairs(k[:, :, -num_k_exclude_rope:], cos[:num_k_exclude_rope], sin[:num_k_exclude_rope])
            k = torch.cat((k[:, :, :-num_k_exclude_rope], ptr), dim=-2)
        return q, k


def _rotate_half(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Wrong pairing: (x[i], x[i + d/2]) as in GPT-NeoX, instead of interleaved pairs."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def _negative(name: str, model: MemoryAttention, case: tuple[int, int, int] = (32, 3, 2)) -> None:
    """A wrong variant on a case the parity test also runs (official output reused)."""
    inputs, theirs = _case(*case)
    ours = _run(model, inputs, num_obj_ptr_tokens=PTR_TOKENS)
    assert_differs(f"memory_attention[{case[1]} mem @{case[0]}] {name}", ours, theirs, ATOL_ATTN)


def test_negative_other_rope_theta():
    _negative("theta=100", _ours_attention(rope_theta=100.0))


def test_negative_rope_without_k_repeat():
    _negative("no k-repeat", _ours_attention(_NoKRepeat))


def test_negative_rope_on_object_pointers():
    # One memory frame, so the 16 pointer tokens carry a noticeable share of the attention.
    _negative("rope on pointers", _ours_attention(_RopeOnPointers), case=(32, 1, 2))


def test_negative_wrong_pair_rotation(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(rope_module, "rotate_pairs", _rotate_half)
    _negative("rotate-half pairs", _ours_attention())


def test_negative_without_input_pos_scaling():
    model = _ours_attention()
    model.pos_enc_at_input = False
    _negative("no 0.1*curr_pos at input", model)


# --------------------------------------------------------------------------- memory encoder
def _memory_encoder(downsampler_cls, block_cls, fuser_cls, pe_cls, encoder_cls):
    """The SAM 2.1 tiny memory encoder from the given classes (official or ours)."""
    return encoder_cls(
        out_dim=MEM_DIM,
        position_encoding=pe_cls(num_pos_feats=MEM_DIM, normalize=True, scale=None, temperature=10000),
        mask_downsampler=downsampler_cls(kernel_size=3, stride=2, padding=1),
        fuser=fuser_cls(
            layer=block_cls(dim=256, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
            num_layers=2,
        ),
    ).eval()


@functools.cache
def _encoders() -> tuple[MemoryEncoder, torch.nn.Module]:
    official()
    from sam2.modeling import memory_encoder as ome
    from sam2.modeling.position_encoding import PositionEmbeddingSine as OPE

    theirs = randomize_(_memory_encoder(ome.MaskDownSampler, ome.CXBlock, ome.Fuser, OPE, ome.MemoryEncoder), seed=2)
    ours = _memory_encoder(MaskDownSampler, CXBlock, Fuser, PositionEmbeddingSine, MemoryEncoder)
    load_same_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("skip_mask_sigmoid", [False, True])
@pytest.mark.parametrize(("side", "batch"), [(64, 1), (32, 2)])
def test_memory_encoder_parity(side: int, batch: int, skip_mask_sigmoid: bool):
    ours, theirs = _encoders()
    g = torch.Generator().manual_seed(4)
    pix_feat = torch.randn(batch, 256, side, side, generator=g)
    logits = 8.0 * torch.randn(batch, 1, 16 * side, 16 * side, generator=g)
    # With skip_mask_sigmoid SAM2Base feeds sigmoid(logits) * 20 - 10 (already squashed).
    masks = torch.sigmoid(logits) * 20.0 - 10.0 if skip_mask_sigmoid else logits
    with torch.no_grad():
        out = ours(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
        ref = theirs(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    tag = f"memory_encoder[@{side} x{batch}{' skip_sigmoid' if skip_mask_sigmoid else ''}]"
    assert_parity(f"{tag}.vision_features", out["vision_features"], ref["vision_features"], ATOL_ENC)
    assert len(out["vision_pos_enc"]) == 1
    assert_parity(f"{tag}.vision_pos_enc", out["vision_pos_enc"][0], ref["vision_pos_enc"][0], ATOL_POS)
    if not skip_mask_sigmoid:  # negative control: the sigmoid must matter
        with torch.no_grad():
            wrong = ours(pix_feat, masks, skip_mask_sigmoid=True)["vision_features"]
        assert_differs(f"{tag} without sigmoid", wrong, ref["vision_features"], ATOL_ENC)
