"""Axial 2-D rotary position encoding (RoPE) and the attention that uses it.

Meta's implementation multiplies complex tensors (``torch.polar``/``view_as_complex``), which
ONNX cannot express. Here the same rotation is written with real cos/sin tables: each
interleaved channel pair ``(x[2i], x[2i+1])`` is treated as the complex number
``x[2i] + j*x[2i+1]`` and multiplied by ``cos(a_i) + j*sin(a_i)``, i.e.

    out[2i]   = x[2i] * cos(a_i) - x[2i+1] * sin(a_i)
    out[2i+1] = x[2i] * sin(a_i) + x[2i+1] * cos(a_i)

The first half of the pairs rotates with the token's column (x) index, the second half with
its row (y) index, exactly as ``sam2.modeling.position_encoding.compute_axial_cis`` lays out.
Run eagerly, the same rotation is one complex multiply (Meta's formulation, several times
faster on the memory bank's keys); exports and ``torch.compile`` get the real formulation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sam2_ros.model.common import Attention


def axial_rope_angles(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> Tensor:
    """Rotation angles, (end_x*end_y) x dim/2, for a row-major end_y x end_x token grid.

    Computed with the same float32 operations as the official ``compute_axial_cis`` so the
    cos/sin tables are bit-identical to the real/imaginary parts of its ``freqs_cis``.
    """
    if dim % 4:
        raise ValueError(f"axial RoPE needs a head dim divisible by 4, got {dim}")
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def _eager() -> bool:
    """Whether this runs eagerly: exports and compilers get the real-arithmetic formulation."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def rotate_pairs(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved channel pairs of ``x`` (... x N x D) by N x D/2 angle tables.

    Works in float32 (as the official code does) and returns ``x``'s dtype, so half-precision
    graphs keep full-precision rotations.
    """
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    cos, sin = cos.float(), sin.float()
    if _eager():
        # One complex multiply (Meta's formulation) instead of six real passes over the keys:
        # the memory bank's keys are the largest tensor of memory attention.
        if pairs.stride(-1) != 1 or any(s % 2 for s in pairs.stride()[:-1]) or pairs.storage_offset() % 2:
            pairs = pairs.contiguous()
        out = torch.view_as_complex(pairs) * torch.complex(cos, sin)
        return torch.view_as_real(out).flatten(-2).to(x.dtype)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)


class RoPEAttention(Attention):
    """Multi-head attention with axial RoPE on queries and (a prefix of) keys.

    Used twice per memory-attention layer: as self-attention over the current frame (queries
    and keys are the same grid) and as cross-attention to the memory bank, whose spatial part
    holds several frames of the same grid, one after the other (``rope_k_repeat=True`` then
    reuses the per-token angles for every frame). Trailing key tokens without a grid position
    (object pointers) are excluded from the rotation via ``num_k_exclude_rope``.

    The cos/sin tables for ``feat_sizes`` are non-persistent buffers: they follow ``.to()`` but
    add no state_dict keys, so Meta's checkpoints load strictly. A different token count (an
    input size other than 1024, feature grid = image_size / 16) gets fresh tables for the
    square grid it implies, computed without touching module state so an exported graph
    just folds them to constants.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
        feat_sizes: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.head_dim = self.internal_dim // num_heads
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        angles = axial_rope_angles(self.head_dim, feat_sizes[0], feat_sizes[1], rope_theta)
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)

    def rope_tables(self, num_tokens: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos/sin tables (num_tokens x head_dim/2) for a square grid of ``num_tokens``."""
        if self.rope_cos.shape[0] == num_tokens:
            return self.rope_cos, self.rope_sin
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f"RoPE needs a square token grid, got {num_tokens} query tokens")
        angles = axial_rope_angles(self.head_dim, side, side, self.rope_theta).to(device)
        return angles.cos(), angles.sin()

    def apply_rope(self, q: Tensor, k: Tensor, num_k_exclude_rope: int = 0) -> tuple[Tensor, Tensor]:
        """Rotate split-head ``q`` (B x h x Nq x d) and all but the last ``num_k_exclude_rope``
        keys (B x h x Nk x d); rotated keys must be whole frames of the query grid."""
        num_q = q.shape[-2]
        cos, sin = self.rope_tables(num_q, q.device)
        q = rotate_pairs(q, cos, sin)

        num_k_rope = k.shape[-2] - num_k_exclude_rope
        if num_k_rope <= 0:
            return q, k
        if num_k_rope != num_q and not self.rope_k_repeat:
            raise ValueError(f"{num_k_rope} rotated keys but {num_q} queries: set rope_k_repeat for memories")
        if num_k_rope % num_q:
            raise ValueError(f"{num_k_rope} rotated keys is not a whole number of {num_q}-token frames")
        b, h, _, d = k.shape
        if _eager():
            # Object pointers rotate by angle 0 (an exact identity), so all keys go through one
            # kernel without a slice-and-concatenate copy of the whole bank.
            frames, num_ptr = num_k_rope // num_q, k.shape[-2] - num_k_rope
            cos_k = torch.cat((cos.repeat(frames, 1), cos.new_ones(num_ptr, cos.shape[1])))
            sin_k = torch.cat((sin.repeat(frames, 1), sin.new_zeros(num_ptr, sin.shape[1])))
            return q, rotate_pairs(k, cos_k, sin_k)
        # Viewing the rotated keys as frames of the query grid applies the same angles to every
        # frame (the official "repeat freqs"), for any number of frames.
        k_rope = k[:, :, :num_k_rope].reshape(b, h, -1, num_q, d)
        k_rope = rotate_pairs(k_rope, cos, sin).reshape(b, h, num_k_rope, d)
        # Concatenate rather than assign into a slice: in-place writes do not export.
        return q, torch.cat((k_rope, k[:, :, num_k_rope:]), dim=-2)

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        num_k_exclude_rope: int = 0,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Attend ``q`` (B x Nq x C) to ``k``/``v`` (B x Nk x kv_in_dim).

        ``num_k_exclude_rope``: number of trailing keys left unrotated (object pointers).
        ``attn_mask``: optional, broadcastable to B x heads x Nq x Nk; boolean True = attend.
        """
        q, k, v = self.project(q, k, v)
        q, k = self.apply_rope(q, k, num_k_exclude_rope)
        return self.attend(q, k, v, attn_mask)


class RoPEAttentionV2(RoPEAttention):
    """EdgeTAM's cross-attention RoPE (``RoPEAttentionv2``): distinct query and key grids.

    Queries (the current frame's stride-16 map) rotate on the ``q_sizes`` grid (image_size / 16
    square; a different square token count gets fresh tables, as :class:`RoPEAttention`). Each
    memory frame is ``k_prefix_tokens`` unrotated tokens (the perceiver's global latents) followed
    by a ``k_sizes`` grid of rotated tokens (its 2-D latents); the spatial keys are whole such
    frames, then ``num_k_exclude_rope`` unrotated object-pointer tokens. The official code is told
    the frame count (``rope_k_repeat``); here it follows from the fixed frame length, so a padded
    bank (whole frames) rotates every valid token exactly as the unpadded one.

    Unrotated tokens rotate by angle 0 (cos 1, sin 0): an exact identity, so one table covers all
    keys in one pass, eagerly and in exported graphs alike.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        q_sizes: tuple[int, int] = (64, 64),
        k_sizes: tuple[int, int] = (16, 16),
        k_prefix_tokens: int = 256,
    ) -> None:
        super().__init__(
            embedding_dim,
            num_heads,
            downsample_rate,
            dropout,
            kv_in_dim,
            rope_theta,
            rope_k_repeat=True,
            feat_sizes=q_sizes,
        )
        angles = axial_rope_angles(self.head_dim, k_sizes[0], k_sizes[1], rope_theta)
        self.k_prefix_tokens = k_prefix_tokens
        self.k_frame_tokens = k_prefix_tokens + angles.shape[0]
        ones = torch.ones(k_prefix_tokens, angles.shape[1])
        self.register_buffer("rope_k_cos", torch.cat((ones, angles.cos())), persistent=False)
        self.register_buffer("rope_k_sin", torch.cat((ones * 0, angles.sin())), persistent=False)

    def apply_rope(self, q: Tensor, k: Tensor, num_k_exclude_rope: int = 0) -> tuple[Tensor, Tensor]:
        cos, sin = self.rope_tables(q.shape[-2], q.device)
        q = rotate_pairs(q, cos, sin)
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        if num_k_rope <= 0:
            return q, k
        if num_k_rope % self.k_frame_tokens:
            raise ValueError(
                f"{num_k_rope} memory tokens is not a whole number of {self.k_frame_tokens}-token memory frames"
            )
        frames = num_k_rope // self.k_frame_tokens
        cos_k, sin_k = self.rope_k_cos, self.rope_k_sin
        cos_k = torch.cat((cos_k.repeat(frames, 1), cos_k.new_ones(num_k_exclude_rope, cos_k.shape[1])))
        sin_k = torch.cat((sin_k.repeat(frames, 1), sin_k.new_zeros(num_k_exclude_rope, sin_k.shape[1])))
        return q, rotate_pairs(k, cos_k, sin_k)
