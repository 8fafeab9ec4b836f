"""SAM 2's mask decoder: prompt tokens + image embedding -> mask logits, IoU, object score.

Parameter names match Meta's ``sam2.modeling.sam.mask_decoder`` (``sam_mask_decoder.*``).

The computation is split in two so the ONNX export can keep the cheap, data-dependent
choice of which mask to return outside the graph:

* :meth:`MaskDecoder.predict_masks` -- the network; always returns all mask outputs.
* :func:`select_masks` -- picks the multimask or single-mask output (with the
  stability-based fallback) and the token used as the object pointer.

``MaskDecoder.forward`` is exactly ``select_masks(predict_masks(...))``, as in Meta's code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sam2_ros.model.common import MLP, LayerNorm2d


def stability_scores(mask_logits: Tensor, delta: float) -> Tensor:
    """IoU between the masks thresholded at ``+delta`` and at ``-delta`` (... x H x W -> ...).

    A mask whose logits hover around zero changes a lot between the two thresholds and
    scores low; an empty mask (no pixel above ``-delta``) counts as perfectly stable.
    """
    flat = mask_logits.flatten(-2)
    area_i = torch.sum(flat > delta, dim=-1).float()
    area_u = torch.sum(flat > -delta, dim=-1).float()
    return torch.where(area_u > 0, area_i / area_u, 1.0)


def dynamic_single_mask(all_masks: Tensor, all_ious: Tensor, delta: float, thresh: float) -> tuple[Tensor, Tensor]:
    """Single-mask output with SAM 2's fallback for ambiguous prompts.

    Token 0 (the single-mask token) is used when its mask is stable (score >= ``thresh``);
    otherwise the multimask output (tokens 1..3) with the highest predicted IoU is used.
    This keeps one-click prompts and tracking from returning a half-formed mask.

    Args:
        all_masks: B x 4 x H x W logits from all mask tokens.
        all_ious: B x 4 predicted IoUs.

    Returns:
        (B x 1 x H x W masks, B x 1 IoUs).
    """
    multi_masks, multi_ious = all_masks[:, 1:], all_ious[:, 1:]
    best = torch.argmax(multi_ious, dim=-1, keepdim=True)  # B x 1
    best_masks = torch.take_along_dim(multi_masks, best[:, :, None, None], dim=1)
    best_ious = torch.take_along_dim(multi_ious, best, dim=1)

    single_masks, single_ious = all_masks[:, 0:1], all_ious[:, 0:1]
    is_stable = stability_scores(single_masks, delta) >= thresh  # B x 1
    masks = torch.where(is_stable[..., None, None], single_masks, best_masks)
    ious = torch.where(is_stable, single_ious, best_ious)
    return masks, ious


def select_masks(
    all_masks: Tensor,
    all_ious: Tensor,
    mask_tokens_out: Tensor,
    multimask_output: bool,
    use_multimask_token_for_obj_ptr: bool = False,
    dynamic_multimask_via_stability: bool = False,
    stability_delta: float = 0.05,
    stability_thresh: float = 0.98,
) -> tuple[Tensor, Tensor, Tensor]:
    """Choose the returned masks/IoUs and the SAM output token(s) from all decoder outputs.

    Args:
        all_masks: B x 4 x H x W logits (token 0 = single mask, 1..3 = multimask).
        all_ious: B x 4 predicted IoUs.
        mask_tokens_out: B x 4 x C output mask tokens.
        multimask_output: return the three multimask outputs instead of one mask.
        use_multimask_token_for_obj_ptr: with ``multimask_output``, return the three
            multimask tokens (else always the single-mask token, which is what the memory
            saw during training).
        dynamic_multimask_via_stability: for single-mask output, fall back to the best
            multimask output when token 0's mask is unstable (see :func:`dynamic_single_mask`).
            Meta applies this only in eval mode; the caller decides.

    Returns:
        (masks B x M x H x W, ious B x M, sam_tokens_out B x M' x C) with M, M' in {1, 3}.
    """
    if multimask_output:
        masks, ious = all_masks[:, 1:], all_ious[:, 1:]
    elif dynamic_multimask_via_stability:
        masks, ious = dynamic_single_mask(all_masks, all_ious, stability_delta, stability_thresh)
    else:
        masks, ious = all_masks[:, 0:1], all_ious[:, 0:1]

    if multimask_output and use_multimask_token_for_obj_ptr:
        sam_tokens_out = mask_tokens_out[:, 1:]
    else:
        sam_tokens_out = mask_tokens_out[:, 0:1]
    return masks, ious, sam_tokens_out


class MaskDecoder(nn.Module):
    """Predict masks from image and prompt embeddings with a two-way transformer.

    Learned output tokens ``[obj_score?, iou, mask_0..mask_M]`` are prepended to the prompt
    tokens; after the transformer each mask token is turned by its own hypernetwork MLP into
    weights for a dot product with the upscaled image embedding, giving one mask each.

    Args mirror Meta's ``MaskDecoder`` (keyword-only, same defaults).
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1  # + the single-mask token

        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        # 4x upscaling of the image embedding (64 -> 256). Kept as a Sequential for the
        # checkpoint keys (0, 1, 3); with high-res features its parts are called one by one.
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            # Project the image encoder's stride-4 (s0) and stride-8 (s1) features to the
            # widths of the two upscaling stages they are added to.
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1, stride=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1, stride=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head: nn.Module = (
                MLP(transformer_dim, transformer_dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(transformer_dim, 1)
            )

        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def _output_tokens(self) -> Tensor:
        """The learned output tokens, T x C: [obj_score (if any), iou, mask_0..mask_M]."""
        tokens = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            tokens.insert(0, self.obj_score_token.weight)
        return torch.cat(tokens, dim=0)

    def _upscale(self, src: Tensor, high_res_features: list[Tensor] | None) -> Tensor:
        """B x C x H x W -> B x C/8 x 4H x 4W, mixing in high-res features when enabled."""
        if not self.use_high_res_features:
            return self.output_upscaling(src)
        if high_res_features is None:
            raise ValueError("this decoder uses high-res features; pass high_res_features=[feat_s0, feat_s1]")
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(ln1(dc1(src) + feat_s1))
        return act2(dc2(x) + feat_s0)

    def predict_masks(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run the decoder network and return every output, without selection.

        Args: see :meth:`forward`.

        Returns:
            masks: B x 4 x 4H x 4W logits (token 0 = single mask, 1..3 = multimask).
            iou_pred: B x 4.
            mask_tokens_out: B x 4 x C.
            object_score_logits: B x 1 (a constant 10, i.e. "present", without an
                object-score head).
        """
        s = 1 if self.pred_obj_scores else 0
        num_prompts = sparse_prompt_embeddings.shape[0]
        output_tokens = self._output_tokens().unsqueeze(0).expand(num_prompts, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        # One image embedding is shared by all prompts (objects) of that image.
        if repeat_image:
            src = torch.repeat_interleave(image_embeddings, num_prompts, dim=0)
        elif image_embeddings.shape[0] != num_prompts:
            raise ValueError(
                f"image batch {image_embeddings.shape[0]} != prompt batch {num_prompts}; use repeat_image=True"
            )
        else:
            src = image_embeddings
        src = src + dense_prompt_embeddings
        if image_pe.shape[0] != 1:
            raise ValueError("image_pe must have batch size 1 (from PromptEncoder.get_dense_pe())")
        pos_src = torch.repeat_interleave(image_pe, num_prompts, dim=0)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, s, :]
        mask_tokens_out = hs[:, s + 1 : s + 1 + self.num_mask_tokens, :]

        upscaled = self._upscale(src.transpose(1, 2).reshape(b, c, h, w), high_res_features)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0, :])
        else:
            object_score_logits = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def select(
        self, all_masks: Tensor, all_ious: Tensor, mask_tokens_out: Tensor, multimask_output: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`select_masks` with this decoder's settings (stability fallback only in eval)."""
        return select_masks(
            all_masks,
            all_ious,
            mask_tokens_out,
            multimask_output,
            use_multimask_token_for_obj_ptr=self.use_multimask_token_for_obj_ptr,
            dynamic_multimask_via_stability=self.dynamic_multimask_via_stability and not self.training,
            stability_delta=self.dynamic_multimask_stability_delta,
            stability_thresh=self.dynamic_multimask_stability_thresh,
        )

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Predict masks for a batch of prompts.

        Args:
            image_embeddings: B_img x C x H x W (B_img = 1 with ``repeat_image``, else B).
            image_pe: 1 x C x H x W, from :meth:`PromptEncoder.get_dense_pe`.
            sparse_prompt_embeddings: B x N x C point/box tokens.
            dense_prompt_embeddings: B x C x H x W mask (or "no mask") embedding.
            multimask_output: return 3 masks instead of 1.
            repeat_image: repeat each image embedding once per prompt
                (``torch.repeat_interleave``) instead of expecting one image per prompt.
            high_res_features: [s0 B x C/8 x 4H x 4W, s1 B x C/4 x 2H x 2W], already
                projected by ``conv_s0``/``conv_s1``; required iff ``use_high_res_features``.

        Returns:
            masks B x M x 4H x 4W, iou_pred B x M, sam_tokens_out B x M' x C,
            object_score_logits B x 1.
        """
        all_masks, all_ious, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
        )
        masks, iou_pred, sam_tokens_out = self.select(all_masks, all_ious, mask_tokens_out, multimask_output)
        return masks, iou_pred, sam_tokens_out, object_score_logits
