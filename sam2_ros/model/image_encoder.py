"""SAM 2 image encoder: Hiera trunk + FPN neck.

Re-implements ``sam2.modeling.backbones.image_encoder`` with identical parameter names
(``trunk.*``, ``neck.convs.{i}.conv.*``) and identical outputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FpnNeck(nn.Module):
    """Feature-pyramid neck without output convs (Meta's modified FPN).

    Each backbone level is projected to ``d_model`` by a lateral conv; levels listed in
    ``fpn_top_down_levels`` additionally receive the 2x-upsampled fused map of the level
    below. ``backbone_channel_list`` is ordered lowest resolution first (the trunk's
    ``channel_list``), while the inputs and outputs of :meth:`forward` are ordered highest
    resolution first, as in the official module.
    """

    def __init__(
        self,
        position_encoding: nn.Module,
        d_model: int,
        backbone_channel_list: Sequence[int],
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "bilinear",
        fuse_type: str = "sum",
        fpn_top_down_levels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.position_encoding = position_encoding
        self.backbone_channel_list = list(backbone_channel_list)
        self.d_model = d_model
        # A Sequential named "conv" inside each entry keeps Meta's key ``convs.{i}.conv.*``.
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(dim, d_model, kernel_size, stride=stride, padding=padding)))
            for dim in self.backbone_channel_list
        )
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        # Default: every level gets top-down features. SAM 2 configs use [2, 3], so the two
        # high-resolution levels are purely lateral (they feed the mask decoder directly).
        levels = range(len(self.convs)) if fpn_top_down_levels is None else fpn_top_down_levels
        self.fpn_top_down_levels = list(levels)

    def _upsample(self, x: Tensor) -> Tensor:
        """2x upsampling of the coarser fused map, in fp32 like the official neck."""
        return F.interpolate(
            x.to(dtype=torch.float32),
            scale_factor=2.0,
            mode=self.fpn_interp_model,
            align_corners=None if self.fpn_interp_model == "nearest" else False,
            antialias=False,
        )

    def forward(self, xs: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Fuse trunk features (highest resolution first) -> (features, position encodings)."""
        if len(xs) != len(self.convs):
            raise ValueError(f"expected {len(self.convs)} feature maps, got {len(xs)}")
        n = len(self.convs) - 1
        out: list[Tensor] = []
        pos: list[Tensor] = []
        prev: Tensor | None = None
        for i in range(n, -1, -1):  # top-down: lowest resolution first, reversed below
            lateral = self.convs[n - i](xs[i])
            if prev is not None and i in self.fpn_top_down_levels:
                prev = lateral + self._upsample(prev)
                if self.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out.append(prev)
            pos.append(self.position_encoding(prev).to(prev.dtype))
        return out[::-1], pos[::-1]


class ImageEncoder(nn.Module):
    """Trunk + neck; returns the dict consumed by SAM 2's heads.

    ``scalp`` drops that many of the lowest-resolution levels (SAM 2 uses 1, keeping strides
    4, 8 and 16). ``vision_features`` is the lowest remaining resolution.
    """

    def __init__(self, trunk: nn.Module, neck: FpnNeck, scalp: int = 0) -> None:
        super().__init__()
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(
                f"channel dims of trunk {list(trunk.channel_list)} and neck "
                f"{list(neck.backbone_channel_list)} do not match"
            )
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, sample: Tensor) -> dict[str, Tensor | list[Tensor]]:
        features, pos = self.neck(self.trunk(sample))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return {
            "vision_features": features[-1],
            "vision_pos_enc": pos,
            "backbone_fpn": features,
        }
