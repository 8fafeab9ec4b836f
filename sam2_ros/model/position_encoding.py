"""Position encodings: 2-D sine (image features, memories) and random Fourier (prompts).

The sine encoding depends only on the feature-map size, so it is computed once per
(H, W, device) and cached; in an exported graph it folds to a constant.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """DETR-style 2-D sine/cosine encoding of normalised pixel centres (no parameters)."""

    def __init__(
        self,
        num_pos_feats: int,
        temperature: int = 10000,
        normalize: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("normalize should be True if scale is passed")
        self.num_pos_feats = num_pos_feats // 2  # half for y, half for x
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache: dict[tuple[int, int, torch.device], Tensor] = {}

    def _frequencies(self, device: torch.device) -> Tensor:
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=device)
        return self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)

    def _interleave(self, pos: Tensor) -> Tensor:
        """sin on even, cos on odd frequencies, interleaved along the last axis."""
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)

    @torch.no_grad()
    def grid(self, height: int, width: int, device: torch.device) -> Tensor:
        """The C x H x W encoding of an H x W feature map."""
        key = (height, width, torch.device(device))
        if key not in self._cache:
            y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
            x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
            if self.normalize:
                eps = 1e-6
                y = y / (y[-1:] + eps) * self.scale
                x = x / (x[-1:] + eps) * self.scale
            freqs = self._frequencies(device)
            pos_y = self._interleave(y[:, None] / freqs)  # H x F
            pos_x = self._interleave(x[:, None] / freqs)  # W x F
            pos = torch.cat(
                (pos_y[:, None, :].expand(height, width, -1), pos_x[None, :, :].expand(height, width, -1)),
                dim=-1,
            )
            self._cache[key] = pos.permute(2, 0, 1).contiguous()
        return self._cache[key]

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Encoding for feature map ``x`` (B x C x H x W), batched to B, in ``x``'s dtype."""
        pos = self.grid(x.shape[-2], x.shape[-1], x.device)
        return pos.to(x.dtype)[None].expand(x.shape[0], -1, -1, -1)


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised coordinates (SAM's prompt encoding).

    The Gaussian matrix is a buffer stored in checkpoints
    (``pe_layer.positional_encoding_gaussian_matrix``).
    """

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: Tensor) -> Tensor:
        """Encode coordinates in [0, 1]^2 (shape ... x 2) to ... x 2F features."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix.to(coords.dtype)
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> Tensor:
        """C x H x W encoding of the centres of an H x W grid."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([x[None, :].expand(h, w), y[:, None].expand(h, w)], dim=-1)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Encode pixel coordinates (B x N x 2, x then y) of an image of ``image_size`` (H, W)."""
        size_xy = coords_input.new_tensor([image_size[1], image_size[0]])
        return self._pe_encoding((coords_input / size_xy).to(torch.float))
