"""Hiera trunk of SAM 2's image encoder (Hiera-Det, https://arxiv.org/abs/2306.00989).

A re-implementation of ``sam2.modeling.backbones.hieradet.Hiera`` for inference and export:
parameter names and shapes are identical to Meta's, so official checkpoints load strictly,
and the arithmetic follows the same order so outputs match to the last bit on CPU fp32.

Tensors inside the trunk are channels-last (B x H x W x C), as in the official code, so the
linear layers and LayerNorms act on the last axis without permutes. Every shape used for
window padding is a Python int derived from the input shape, so for a fixed input size the
traced/exported graph is static and contains no data-dependent control flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam2_ros.model.common import MLP


def _padded(size: int, window_size: int) -> int:
    """``size`` rounded up to a multiple of ``window_size`` (windows tile the padded map)."""
    return -(-size // window_size) * window_size


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split B x H x W x C into (B * nWindows) x ws x ws x C, zero-padding H and W at the end.

    The padded tokens are real zeros that take part in attention (no mask), exactly as in
    the official model; masking them would change the numbers.
    """
    b, h, w, c = x.shape
    hp, wp = _padded(h, window_size), _padded(w, window_size)
    if hp != h or wp != w:
        x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
    x = x.reshape(b, hp // window_size, window_size, wp // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_unpartition(windows: Tensor, window_size: int, hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: reassemble windows into B x H x W x C and crop.

    ``hw`` is the unpadded output size; the padded size is recomputed from it, which also
    covers blocks whose windows shrank through query pooling.
    """
    h, w = hw
    hp, wp = _padded(h, window_size), _padded(w, window_size)
    rows, cols = hp // window_size, wp // window_size
    b = windows.shape[0] // (rows * cols)
    x = windows.reshape(b, rows, cols, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp != h or wp != w:
        x = x[:, :h, :w, :]
    return x


def pool_channels_last(x: Tensor, stride: tuple[int, int] | None) -> Tensor:
    """Max-pool a B x H x W x C map by ``stride`` (kernel = stride, floor mode); identity if None."""
    if stride is None:
        return x
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return x.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution from RGB to tokens, returned channels-last."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention over a B x H x W x C map whose queries may be max-pooled.

    Pooling only the queries is how Hiera downsamples at a stage change: the output has the
    pooled resolution while keys/values still see every token of the window.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = torch.unbind(qkv, 2)  # each B x HW x heads x c
        if self.q_stride is not None:
            q = pool_channels_last(q.reshape(b, h, w, -1), self.q_stride)
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(b, h * w, self.num_heads, -1)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block with optional windowing and query pooling.

    ``window_size == 0`` means global attention. At a stage change (``q_stride`` set) the
    block widens ``dim -> dim_out`` and halves the resolution; the residual branch then goes
    through ``proj`` and the same pooling so both branches agree in shape.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        q_stride: tuple[int, int] | None = None,
        window_size: int = 0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = tuple(q_stride) if q_stride else None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_stride=self.q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            # The widened residual is taken from the *normalised* input, as in Meta's model.
            shortcut = pool_channels_last(self.proj(x), self.q_stride)

        if self.window_size > 0:
            x = window_partition(x, self.window_size)
        x = self.attn(x)
        if self.window_size > 0:
            # Query pooling shrank every window by the stride; the output map is the
            # residual's (pooled) size.
            out_window = self.window_size // self.q_stride[0] if self.q_stride else self.window_size
            x = window_unpartition(x, out_window, (shortcut.shape[1], shortcut.shape[2]))

        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """Hierarchical ViT trunk returning one feature map per stage (B x C x H x W).

    Arguments carry the names and defaults of the official ``Hiera`` so the ``trunk`` section
    of Meta's YAML configs constructs it unchanged. Outputs are ordered from the highest
    resolution (stride 4) to the lowest (stride 32); ``channel_list`` is in the reverse
    order, which is what :class:`~sam2_ros.model.image_encoder.FpnNeck` expects.

    ``drop_path_rate`` is accepted for config compatibility only: stochastic depth is a
    training regulariser without parameters, and this module is for inference.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        drop_path_rate: float = 0.0,
        q_pool: int = 3,
        q_stride: Sequence[int] = (2, 2),
        stages: Sequence[int] = (2, 3, 16, 3),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        window_pos_embed_bkg_spatial_size: Sequence[int] = (14, 14),
        window_spec: Sequence[int] = (8, 4, 14, 7),
        global_att_blocks: Sequence[int] | None = (12, 16, 20),
        return_interm_layers: bool = True,
    ) -> None:
        super().__init__()
        del drop_path_rate  # inference only, see class docstring
        if len(stages) != len(window_spec):
            raise ValueError(f"stages {stages} and window_spec {window_spec} must have equal length")
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        if not 0 <= q_pool <= len(stages) - 1:
            raise ValueError(f"q_pool={q_pool} must be in [0, {len(stages) - 1}]")
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.return_interm_layers = return_interm_layers
        global_blocks = set(global_att_blocks or ())

        self.patch_embed = PatchEmbed(embed_dim)
        # Windowed absolute position embedding (https://arxiv.org/abs/2311.05613): a coarse
        # background grid interpolated to the token grid plus one window-sized tile.
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))

        self.blocks = nn.ModuleList()
        dim, stage = embed_dim, 0
        for i in range(sum(stages)):
            # The window size lags the stage by one block: the first block of a stage still
            # partitions with the previous stage's window (before pooling halves it).
            window_size = 0 if i in global_blocks else window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * dim_mul)
                num_heads = int(num_heads * head_mul)
                stage += 1
            self.blocks.append(
                MultiScaleBlock(
                    dim=dim,
                    dim_out=dim_out,
                    num_heads=num_heads,
                    q_stride=tuple(q_stride) if i in q_pool_blocks else None,
                    window_size=window_size,
                )
            )
            dim = dim_out

        ends = self.stage_ends[::-1] if return_interm_layers else self.stage_ends[-1:]
        self.channel_list = [self.blocks[i].dim_out for i in ends]

    def _get_pos_embed(self, hw: tuple[int, int]) -> Tensor:
        """Position embedding for an h x w token grid, channels-last (1 x h x w x C).

        Bicubic interpolation of the background grid (same call as Meta's, hence the same
        numbers) plus the window embedding tiled over the grid; the grid must therefore be
        a multiple of the window, i.e. the image a multiple of 4 * window_spec[0].
        """
        h, w = hw
        wh, ww = self.pos_embed_window.shape[-2:]
        if h % wh or w % ww:
            raise ValueError(f"token grid {h}x{w} is not a multiple of the {wh}x{ww} position window")
        pos_embed = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        pos_embed = pos_embed + self.pos_embed_window.tile(1, 1, h // wh, w // ww)
        return pos_embed.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """B x 3 x H x W image -> per-stage features, highest resolution first."""
        x = self.patch_embed(x)
        x = x + self._get_pos_embed((x.shape[1], x.shape[2]))
        outputs = []
        last = self.stage_ends[-1]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == last or (self.return_interm_layers and i in self.stage_ends):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
