"""EdgeTAM's 2-D spatial perceiver: compresses each memory frame to a few latents.

Re-implements ``sam2.modeling.perceiver.PerceiverResampler`` of Meta's EdgeTAM with identical
parameter names (``spatial_perceiver.*``), for the released configuration: two layers of
width 64 (one head), with self-attention among the latents. A memory frame (B x 64 x H x W,
H = W = image_size / 16) becomes 512 tokens:

* 256 **global** latents (``latents``), each attending to every position of the frame with
  the frame's sine position encoding added to keys *and* values (the official
  ``pos_enc_at_key_value`` flag is ignored upstream: position is always added when given).
  They carry a zero position encoding afterwards and are not rotated by memory attention.
* 256 **2-D** latents (``latents_2d``) on a 16 x 16 grid: latent ``(i, j)`` attends only to
  its own (H/16) x (W/16) window, without position; afterwards they carry the sine encoding of
  the 16 x 16 grid, and memory attention rotates them with a 16 x 16 RoPE grid.

Output tokens are ``[global | 2-D]`` along dim 1 (B x 512 x 64) with their encodings.
Unlike the upstream code (``.expand(B, ...).view(...)`` fails for B > 1, EdgeTAM issue #15),
any batch of objects works: objects are independent, so a batch equals one call per object.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    """LayerNorm, bias-free Linear, GELU, bias-free Linear (keys ``0``, ``1``, ``3``)."""
    inner = dim * mult
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(), nn.Linear(inner, dim, bias=False)
    )


def _heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class PerceiverAttention(nn.Module):
    """Latents (queries) attend to inputs; optional position added to keys and values."""

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 1) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm_x = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, latents: Tensor, x: Tensor, pos: Tensor | None = None) -> Tensor:
        latents = self.norm_latents(latents)
        x = self.norm_x(x)
        q = _heads(self.to_q(latents), self.heads)
        k, v = (_heads(t, self.heads) for t in self.to_kv(x).chunk(2, dim=-1))
        if pos is not None:
            pos = _heads(pos, self.heads)
            k, v = k + pos, v + pos
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v)))


class LatentSelfAttention(nn.Module):
    """Pre-norm self-attention among latents (the official ``Attention``)."""

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 1) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(x)
        q = _heads(self.to_q(x), self.heads)
        k, v = (_heads(t, self.heads) for t in self.to_kv(x).chunk(2, dim=-1))
        return self.to_out(_merge(F.scaled_dot_product_attention(q, k, v)))


class PerceiverEncoderLayer(nn.Module):
    def __init__(self, dim: int, dim_head: int = 64, heads: int = 1, ff_mult: int = 4, use_self_attn: bool = True):
        super().__init__()
        self.attn = PerceiverAttention(dim, dim_head, heads)
        self.ff = feed_forward(dim, ff_mult)
        self.use_self_attn = use_self_attn
        if use_self_attn:
            self.self_attn = LatentSelfAttention(dim, dim_head, heads)
            self.self_ff = feed_forward(dim, ff_mult)

    def forward(self, latents: Tensor, x: Tensor, pos: Tensor | None = None) -> Tensor:
        latents = self.attn(latents, x, pos) + latents
        latents = self.ff(latents) + latents
        if self.use_self_attn:
            latents = self.self_attn(latents) + latents
            latents = self.self_ff(latents) + latents
        return latents


class PerceiverResampler(nn.Module):
    """Memory frame (B x C x H x W) + position (B x C x H x W) -> B x N x C latents + position.

    ``num_latents`` global latents and ``num_latents_2d`` (a square number) window latents;
    see the module docstring. ``position_encoding`` encodes the 2-D latents' grid.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        position_encoding: nn.Module,
        dim_head: int = 64,
        heads: int = 1,
        num_latents: int = 256,
        num_latents_2d: int = 256,
        ff_mult: int = 4,
        use_self_attn: bool = True,
    ) -> None:
        super().__init__()
        self.num_latents = num_latents
        self.num_latents_2d = num_latents_2d
        self.grid = round(num_latents_2d**0.5)
        if num_latents_2d > 0 and self.grid**2 != num_latents_2d:
            raise ValueError(f"num_latents_2d must be a square number, got {num_latents_2d}")
        if num_latents > 0:
            self.latents = nn.Parameter(torch.randn(num_latents, dim))
        if num_latents_2d > 0:
            self.latents_2d = nn.Parameter(torch.randn(num_latents_2d, dim))
        self.position_encoding = position_encoding
        self.layers = nn.ModuleList(
            PerceiverEncoderLayer(dim, dim_head, heads, ff_mult, use_self_attn) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    @property
    def num_tokens(self) -> int:
        """Memory tokens per frame (global + 2-D latents)."""
        return max(self.num_latents, 0) + max(self.num_latents_2d, 0)

    def forward(self, x: Tensor, pos: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        latents, positions = [], []
        if self.num_latents > 0:
            lat, lpos = self.forward_1d(x, pos)
            latents.append(lat)
            positions.append(lpos)
        if self.num_latents_2d > 0:
            lat, lpos = self.forward_2d(x)
            latents.append(lat)
            positions.append(lpos)
        out = torch.cat(latents, dim=1)
        return out, (torch.cat(positions, dim=1) if pos is not None else None)

    def forward_1d(self, x: Tensor, pos: Tensor | None) -> tuple[Tensor, Tensor]:
        """Global latents over the whole frame; position on keys and values; zero position out."""
        b = x.shape[0]
        latents = self.latents.unsqueeze(0).expand(b, -1, -1)
        x = x.permute(0, 2, 3, 1).flatten(1, 2)
        kv_pos = pos.permute(0, 2, 3, 1).flatten(1, 2) if pos is not None else None
        for layer in self.layers:
            latents = layer(latents, x, kv_pos)
        return self.norm(latents), torch.zeros_like(latents)

    def forward_2d(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One latent per window of a grid x grid partition, row-major; sine position of the grid."""
        b, c, h, w = x.shape
        g = self.grid
        if h % g or w % g:
            raise ValueError(f"memory map {h}x{w} is not divisible into a {g}x{g} grid (image size % {16 * g})")
        wh, ww = h // g, w // g
        # B x C x H x W -> (B * g * g) x (wh * ww) x C, windows row-major (the official window_partition).
        windows = x.reshape(b, c, g, wh, g, ww).permute(0, 2, 4, 3, 5, 1).reshape(b * g * g, wh * ww, c)
        latents = self.latents_2d.unsqueeze(0).expand(b, -1, -1).reshape(b * g * g, 1, c)
        for layer in self.layers:
            latents = layer(latents, windows)
        latents = latents.reshape(b, g * g, c)
        grid_pos = self.position_encoding(latents.new_empty(b, c, g, g)).flatten(2).transpose(1, 2)
        return self.norm(latents), grid_pos.to(latents.dtype)
