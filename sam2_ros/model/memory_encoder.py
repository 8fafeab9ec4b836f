"""Memory encoder: turns a frame's features and its predicted mask into a memory.

The mask (image resolution) is downsampled to the feature grid, added to projected image
features, mixed by a few ConvNeXt blocks and projected to the narrow memory width (64 in
SAM 2.1). Module and parameter names match ``sam2.modeling.memory_encoder`` so Meta's
``memory_encoder.*`` weights load strictly.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from sam2_ros.model.common import LayerNorm2d
from sam2_ros.model.position_encoding import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """Downsample a 1-channel mask by ``total_stride`` in steps of ``stride``.

    Each step is conv -> LayerNorm2d -> activation and multiplies the channels by
    ``stride**2`` (so no information is discarded by the stride); a final 1x1 conv maps to
    ``embed_dim``. The layers live in one ``nn.Sequential`` named ``encoder`` because the
    checkpoint indexes them as ``encoder.<i>.*``.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 4,
        stride: int = 4,
        padding: int = 0,
        total_stride: int = 16,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        num_layers = int(math.log2(total_stride) // math.log2(stride))
        if stride**num_layers != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        self.encoder = nn.Sequential()
        in_chans = out_chans = 1
        for _ in range(num_layers):
            out_chans = in_chans * stride**2
            self.encoder.append(nn.Conv2d(in_chans, out_chans, kernel_size, stride=stride, padding=padding))
            self.encoder.append(LayerNorm2d(out_chans))
            self.encoder.append(activation())
            in_chans = out_chans
        self.encoder.append(nn.Conv2d(out_chans, embed_dim, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        """B x 1 x H x W -> B x embed_dim x H/total_stride x W/total_stride."""
        return self.encoder(x)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep if keep > 0.0 else x * mask


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv -> LayerNorm2d -> MLP (as linears) -> layer scale.

    The pointwise convs are ``nn.Linear`` on channels-last tensors because that is how the
    checkpoint stores them (``pwconv1.weight`` is 2-D).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        padding: int = 3,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        use_dwconv: bool = True,
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # NCHW -> NHWC for the linears
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class Fuser(nn.Module):
    """Optional 1x1 input projection followed by ``num_layers`` deep copies of ``layer``."""

    def __init__(
        self,
        layer: nn.Module,
        num_layers: int,
        dim: int | None = None,
        input_projection: bool = False,
    ) -> None:
        super().__init__()
        if input_projection and dim is None:
            raise ValueError("input_projection needs dim")
        self.proj = nn.Conv2d(dim, dim, kernel_size=1) if input_projection else nn.Identity()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Fuse image features (B x in_dim x H x W) with a mask into an ``out_dim`` memory."""

    def __init__(
        self,
        out_dim: int,
        mask_downsampler: MaskDownSampler,
        fuser: Fuser,
        position_encoding: PositionEmbeddingSine,
        in_dim: int = 256,
    ) -> None:
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = fuser
        self.position_encoding = position_encoding
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(
        self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False
    ) -> dict[str, Tensor | list[Tensor]]:
        """``masks``: B x 1 x 16H x 16W logits (or probabilities with ``skip_mask_sigmoid``).

        The sigmoid by default narrows the gap between predicted logits and the boolean
        ground-truth masks the encoder was also trained on. Returns ``vision_features``
        (B x out_dim x H x W) and ``vision_pos_enc``, a one-element list with its sine encoding.
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return {"vision_features": x, "vision_pos_enc": [pos]}
