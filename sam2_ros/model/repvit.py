"""RepViT-M1, EdgeTAM's image-encoder trunk, without timm.

EdgeTAM builds its trunk with ``timm.create_model("repvit_m1.dist_in1k", features_only=True,
out_indices=(0, 1, 2, 3))`` (RepViT, Wang et al., "RepViT: Revisiting Mobile CNN From ViT
Perspective", arXiv 2307.09283, in timm's ``legacy`` form). This module reproduces the
modules that model holds, under the same names, so ``image_encoder.trunk.body.*`` of Meta's
``edgetam.pt`` loads unchanged:

* ``body.stem``: two stride-2 3x3 ConvNorms (3 -> 24 -> 48) with GELU between (stride 4);
* ``body.stages_{0..3}``: widths 48/96/192/384, depths 2/2/14/2; stages 1-3 start with a
  ``downsample`` (a block without SE, a stride-2 depthwise ConvNorm, a 1x1 ConvNorm and a
  residual MLP); blocks alternate squeeze-excitation on/off, starting with on.

A ConvNorm is a bias-free conv followed by BatchNorm (inference statistics; the checkpoint
holds them, ``num_batches_tracked`` included). The trunk returns the four stage outputs at
strides 4, 8, 16 and 32, highest resolution first, as timm's feature extractor does.
:meth:`RepViT.fuse_` folds every BatchNorm into its conv and the three token-mixer branches
into one depthwise conv (RepViT's structural re-parameterisation) for faster inference; the
fused model no longer loads checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's ``make_divisible`` with ``round_limit=0``: the nearest multiple of ``divisor``."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class ConvNorm(nn.Sequential):
    """Bias-free conv (``c``) then BatchNorm (``bn``)."""

    def __init__(
        self, in_dim: int, out_dim: int, kernel_size: int = 1, stride: int = 1, padding: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_dim))

    @torch.no_grad()
    def fused(self) -> nn.Conv2d:
        """The equivalent single conv (inference statistics folded in)."""
        conv, bn = self.c, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            groups=conv.groups,
            bias=True,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


class RepVggDw(nn.Module):
    """Token mixer: depthwise kxk ConvNorm + depthwise 1x1 ConvNorm + identity."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = ConvNorm(dim, dim, kernel_size, 1, (kernel_size - 1) // 2, groups=dim)
        self.conv1 = ConvNorm(dim, dim, 1, 1, 0, groups=dim)
        self.fused: nn.Conv2d | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.fused is not None:
            return self.fused(x)
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse_(self) -> None:
        conv, conv1 = self.conv.fused(), self.conv1.fused()
        k = conv.kernel_size[0]
        pad = (k - 1) // 2
        identity = torch.zeros_like(conv1.weight)
        identity[:, :, 0, 0] = 1.0
        conv.weight.add_(nn.functional.pad(conv1.weight + identity, [pad] * 4))
        conv.bias.add_(conv1.bias)
        del self.conv, self.conv1
        self.fused = conv


class SqueezeExcite(nn.Module):
    """timm's SEModule with ``rd_ratio=0.25``: mean pool, 1x1 conv, ReLU, 1x1 conv, sigmoid gate."""

    def __init__(self, channels: int, rd_ratio: float = 0.25) -> None:
        super().__init__()
        hidden = make_divisible(channels * rd_ratio)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class RepVitMlp(nn.Module):
    """Channel mixer: 1x1 ConvNorm, GELU, 1x1 ConvNorm."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(dim, hidden_dim)
        self.act = nn.GELU()
        self.conv2 = ConvNorm(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.act(self.conv1(x)))


class RepViTBlock(nn.Module):
    """Token mixer, optional squeeze-excitation, then a residual channel mixer."""

    def __init__(self, dim: int, mlp_ratio: int, kernel_size: int, use_se: bool) -> None:
        super().__init__()
        self.token_mixer = RepVggDw(dim, kernel_size)
        self.se = SqueezeExcite(dim) if use_se else nn.Identity()
        self.channel_mixer = RepVitMlp(dim, dim * mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class RepVitStem(nn.Module):
    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(in_chans, out_chans // 2, 3, 2, 1)
        self.act1 = nn.GELU()
        self.conv2 = ConvNorm(out_chans // 2, out_chans, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class RepVitDownsample(nn.Module):
    def __init__(self, in_dim: int, mlp_ratio: int, out_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.pre_block = RepViTBlock(in_dim, mlp_ratio, kernel_size, use_se=False)
        pad = (kernel_size - 1) // 2
        self.spatial_downsample = ConvNorm(in_dim, in_dim, kernel_size, 2, pad, groups=in_dim)
        self.channel_downsample = ConvNorm(in_dim, out_dim, 1, 1)
        self.ffn = RepVitMlp(out_dim, out_dim * mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.ffn(x)


class RepVitStage(nn.Module):
    def __init__(
        self, in_dim: int, out_dim: int, depth: int, mlp_ratio: int, kernel_size: int, downsample: bool
    ) -> None:
        super().__init__()
        self.downsample = RepVitDownsample(in_dim, mlp_ratio, out_dim, kernel_size) if downsample else nn.Identity()
        self.blocks = nn.Sequential(
            *(RepViTBlock(out_dim, mlp_ratio, kernel_size, use_se=i % 2 == 0) for i in range(depth))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class RepVitFeatures(nn.Module):
    """timm's features-only RepViT: ``stem`` and ``stages_{i}`` (flattened names), all stage outputs."""

    def __init__(self, embed_dim: Sequence[int], depth: Sequence[int], mlp_ratio: int = 2, kernel_size: int = 3):
        super().__init__()
        self.stem = RepVitStem(3, embed_dim[0])
        in_dim = embed_dim[0]
        for i, (dim, d) in enumerate(zip(embed_dim, depth, strict=True)):
            self.add_module(f"stages_{i}", RepVitStage(in_dim, dim, d, mlp_ratio, kernel_size, downsample=i > 0))
            in_dim = dim
        self.num_stages = len(embed_dim)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        out = []
        for i in range(self.num_stages):
            x = getattr(self, f"stages_{i}")(x)
            out.append(x)
        return out


class RepViT(nn.Module):
    """EdgeTAM's ``TimmBackbone`` trunk: ``body`` is the feature extractor.

    ``channel_list`` is lowest resolution first (the neck's ``backbone_channel_list``);
    :meth:`forward` returns the stage outputs highest resolution first.
    """

    def __init__(self, embed_dim: Sequence[int] = (48, 96, 192, 384), depth: Sequence[int] = (2, 2, 14, 2)) -> None:
        super().__init__()
        self.body = RepVitFeatures(embed_dim, depth)
        self.channel_list = list(embed_dim)[::-1]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.body(x)

    @torch.no_grad()
    def fuse_(self) -> RepViT:
        """Fold BatchNorms into convs and merge each token mixer into one conv (inference only)."""
        for module in list(self.modules()):
            if isinstance(module, RepVggDw) and module.fused is None:
                module.fuse_()
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, ConvNorm):
                    setattr(parent, name, child.fused())
        return self.eval()
