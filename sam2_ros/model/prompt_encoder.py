"""SAM 2's prompt encoder: points/boxes -> sparse tokens, a mask -> a dense embedding.

Parameter names match Meta's ``sam2.modeling.sam.prompt_encoder`` (``sam_prompt_encoder.*``
in a full checkpoint). The per-label embedding is written as a one-hot product over the
label tensor rather than boolean-indexed assignment, so the module traces to ONNX with
static shapes and no data-dependent control flow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sam2_ros.model.common import LayerNorm2d
from sam2_ros.model.position_encoding import PositionEmbeddingRandom

#: Point label meanings (SAM convention). ``NOT_A_POINT`` marks padding: its positional
#: encoding is discarded and a learned "not a point" embedding is used instead.
NOT_A_POINT = -1
NEGATIVE = 0
POSITIVE = 1
BOX_TOP_LEFT = 2
BOX_BOTTOM_RIGHT = 3


class PromptEncoder(nn.Module):
    """Encode point, box and mask prompts for the mask decoder.

    Args:
        embed_dim: token width (256 in SAM 2).
        image_embedding_size: (H, W) of the image embedding the decoder attends to.
        input_image_size: (H, W) of the padded model input; point/box coordinates are
            pixels in this frame.
        mask_in_chans: hidden channels of the mask-downscaling convs (16 in SAM 2).
        activation: activation inside the mask-downscaling stack.
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)

        # One learned embedding per label 0..3 (negative, positive, box corners), plus one
        # for padding; each is an Embedding(1, C) to keep Meta's checkpoint keys.
        self.num_point_embeddings = 4
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)

        # Mask prompts come in at 4x the embedding resolution (256x256 for a 64x64 map)
        # and two stride-2 convs bring them down to it.
        self.mask_input_size = (4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        """The prompts' positional encoding evaluated on the image-embedding grid, 1 x C x H x W.

        The decoder adds it to the image tokens so that point tokens and image tokens share
        one coordinate frame.
        """
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _label_table(self) -> Tensor:
        """5 x C table of learned embeddings, row ``label + 1`` for labels -1..3."""
        rows = [self.not_a_point_embed.weight] + [e.weight for e in self.point_embeddings]
        return torch.cat(rows, dim=0)

    def _embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """B x N x 2 pixel coordinates + B x N labels -> B x N(+1) x C tokens.

        Without a box, one padding point is appended: the decoder was trained that way
        (it marks "no box"), so dropping it changes the masks.
        """
        points = points + 0.5  # pixel index -> pixel centre
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), NOT_A_POINT)], dim=1)
        pe = self.pe_layer.forward_with_coords(points, self.input_image_size)

        # Padding points lose their positional encoding entirely.
        pe = torch.where((labels == NOT_A_POINT).unsqueeze(-1), torch.zeros_like(pe), pe)
        # Add the label's learned embedding via a one-hot product. Labels outside -1..3 get
        # an all-zero row, i.e. keep their bare positional encoding (as in Meta's code).
        # Exact in fp32: each output is one embedding value plus zeros.
        label_ids = torch.arange(NOT_A_POINT, BOX_BOTTOM_RIGHT + 1, device=labels.device, dtype=labels.dtype)
        one_hot = (labels.unsqueeze(-1) == label_ids).to(pe.dtype)
        return pe + one_hot @ self._label_table().to(pe.dtype)

    def _embed_boxes(self, boxes: Tensor) -> Tensor:
        """B x 4 boxes (x0, y0, x1, y1 pixels) -> B x 2 corner tokens."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)  # pixel centres, (top-left, bottom-right)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embed = torch.cat(
            [self.point_embeddings[BOX_TOP_LEFT].weight, self.point_embeddings[BOX_BOTTOM_RIGHT].weight]
        )
        return pe + corner_embed.to(pe.dtype)

    @staticmethod
    def _batch_size(points: tuple[Tensor, Tensor] | None, boxes: Tensor | None, masks: Tensor | None) -> int:
        """The prompt batch size, taken from the first prompt given (1 if none)."""
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1

    def forward(
        self,
        points: tuple[Tensor, Tensor] | None,
        boxes: Tensor | None,
        masks: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Embed prompts.

        Args:
            points: (coords B x N x 2 in input pixels (x, y), labels B x N) or None.
                Labels: -1 padding, 0 negative, 1 positive, 2/3 box corners.
            boxes: B x 4 (x0, y0, x1, y1) in input pixels, or None.
            masks: B x 1 x 4H x 4W mask logits, or None.

        Returns:
            sparse: B x N_tokens x C (points [+ padding point when no box], then box corners).
            dense: B x C x H x W (the mask embedding, or the learned "no mask" embedding).
        """
        bs = self._batch_size(points, boxes, masks)
        weight = self.no_mask_embed.weight
        parts: list[Tensor] = []
        if points is not None:
            coords, labels = points
            parts.append(self._embed_points(coords, labels, pad=boxes is None))
        if boxes is not None:
            parts.append(self._embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1) if parts else weight.new_zeros(bs, 0, self.embed_dim)

        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense
