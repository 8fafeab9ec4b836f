"""SAM 2 / 2.1: the parts that join image encoder, prompt heads and memory.

``Sam2Model`` owns the same sub-modules and parameters as Meta's ``SAM2Base`` (identical
state_dict keys) but exposes the per-frame computation as small tensor-in/tensor-out
steps instead of Meta's dict-of-frames bookkeeping. The streaming tracker, the ONNX
export and the parity tests compose these steps; which past frames to attend to is the
tracker's business, not the model's.

Tensor layouts: image features are B x C x H x W; flattened token sequences are
(tokens) x B x C, as in Meta's code, so memory tensors can be concatenated along dim 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sam2_ros.model.common import MLP
from sam2_ros.model.config import Sam2Config
from sam2_ros.model.mask_decoder import select_masks

#: Mask logit written where the object-score head says "no object" (Meta's NO_OBJ_SCORE).
NO_OBJ_SCORE = -1024.0


def sine_pe_1d(positions: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """Transformer sine encoding of scalar positions: N -> N x dim (sin half, cos half)."""
    half = dim // 2
    freqs = torch.arange(half, dtype=torch.float32, device=positions.device)
    freqs = temperature ** (2 * (freqs // 2) / half)
    angles = positions.unsqueeze(-1) / freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@dataclass
class ImageFeatures:
    """One frame's encoder output, ready for the heads.

    ``vision_feats``/``vision_pos``: stride-16 map and its position encoding (B x 256 x H x W).
    ``high_res``: the stride-4 and stride-8 maps after the decoder's ``conv_s0``/``conv_s1``.
    """

    vision_feats: Tensor
    vision_pos: Tensor
    high_res: list[Tensor]

    def expand(self, batch: int) -> ImageFeatures:
        """Broadcast a single-image batch to ``batch`` objects without copying."""

        def ex(t: Tensor) -> Tensor:
            return t.expand(batch, *t.shape[1:])

        return ImageFeatures(ex(self.vision_feats), ex(self.vision_pos), [ex(h) for h in self.high_res])


@dataclass
class DecoderOutputs:
    """Everything the prompt encoder + mask decoder compute, before any selection.

    This is the exported decoder graph's output; :func:`finish_decoding` turns it into a
    :class:`SamOutput` the same way for every backend.
    """

    masks: Tensor  # B x 4 x 4H x 4W logits (0: single-mask token, 1..3: multimask tokens)
    ious: Tensor  # B x 4
    obj_ptrs: Tensor  # B x 4 x C: the object-pointer projection of each mask token
    object_score_logits: Tensor  # B x 1


@dataclass
class SamOutput:
    """Prompt-head output for a batch of objects (Meta's ``_forward_sam_heads`` tuple)."""

    low_res_multimasks: Tensor  # B x M x 4H x 4W logits (M = 3 or 1)
    ious: Tensor  # B x M
    low_res_masks: Tensor  # B x 1 x 4H x 4W, the selected mask
    high_res_masks: Tensor  # B x 1 x S x S
    obj_ptr: Tensor  # B x C object pointer
    object_score_logits: Tensor  # B x 1, > 0 means the object is present


class Sam2Model(nn.Module):
    """SAM 2 with Meta's parameter names; see the module docstring for the design."""

    def __init__(
        self,
        config: Sam2Config,
        image_encoder: nn.Module,
        memory_attention: nn.Module,
        memory_encoder: nn.Module,
        sam_prompt_encoder: nn.Module,
        sam_mask_decoder: nn.Module,
        spatial_perceiver: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        # EdgeTAM: compresses each memory frame to latent tokens (None for SAM 2 / 2.1).
        self.spatial_perceiver = spatial_perceiver
        self.sam_prompt_encoder = sam_prompt_encoder
        self.sam_mask_decoder = sam_mask_decoder
        self.hidden_dim = hidden = image_encoder.neck.d_model
        self.mem_dim = mem = memory_encoder.out_proj.weight.shape[0]
        self.image_size = config.image_size
        self.num_maskmem = config.num_maskmem

        # Downsamples a mask prompt used as output, to get its object pointer.
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3)
        if config.is_v21:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem))
            self.obj_ptr_tpos_proj = nn.Linear(hidden, mem)
        else:
            self.no_obj_embed_spatial = None
            self.obj_ptr_tpos_proj = nn.Identity()
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc, self.no_obj_ptr):
            nn.init.trunc_normal_(p, std=0.02)
        if self.no_obj_embed_spatial is not None:
            nn.init.trunc_normal_(self.no_obj_embed_spatial, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def feat_size(self) -> int:
        return self.config.feat_size

    @property
    def mem_tokens(self) -> int | None:
        """Memory tokens per frame when a spatial perceiver compresses each frame's memory
        (EdgeTAM: 256 1-D + 256 2-D latents); None when a frame's memory is the H x W map."""
        perceiver = getattr(self, "spatial_perceiver", None)
        if perceiver is None:
            return None
        return sum(int(getattr(perceiver, n).shape[0]) for n in ("latents", "latents_2d") if hasattr(perceiver, n))

    @property
    def memory_shape(self) -> tuple[int, ...]:
        """One frame's memory for one object as the tracker stores it: 64 x H x W, or T x 64 tokens."""
        t = self.mem_tokens
        return (self.mem_dim, self.feat_size, self.feat_size) if t is None else (t, self.mem_dim)

    @property
    def max_ptr_tokens(self) -> int:
        """Memory-attention tokens of a full bank's object pointers (each split into hidden / mem tokens)."""
        return self.config.max_obj_ptrs_in_encoder * (self.hidden_dim // self.mem_dim)

    @property
    def bank_tokens(self) -> int:
        """Key tokens of one object's full bank in memory attention: ``num_maskmem`` frames, then the pointers."""
        return self.config.num_maskmem * self.config.memory_tokens_per_frame + self.max_ptr_tokens

    # ------------------------------------------------------------------ image
    def encode_image(self, image: Tensor) -> ImageFeatures:
        """Normalised B x 3 x S x S image -> features for the prompt heads and memory."""
        out = self.image_encoder(image)
        fpn, pos = out["backbone_fpn"], out["vision_pos_enc"]
        high_res = [self.sam_mask_decoder.conv_s0(fpn[0]), self.sam_mask_decoder.conv_s1(fpn[1])]
        return ImageFeatures(vision_feats=fpn[-1], vision_pos=pos[-1], high_res=high_res)

    # ------------------------------------------------------------ prompt heads
    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """Meta's rule: three candidates for a single click (or none), one otherwise.

        ``multimask_output_for_tracking`` is on for every released model, so the frame type
        does not matter; the argument is kept so call sites read like the paper.
        """
        del is_init_cond_frame
        cfg = self.config
        return cfg.multimask_min_pt_num <= num_points <= cfg.multimask_max_pt_num

    def sam_heads(
        self,
        pix_feat: Tensor,
        high_res: list[Tensor],
        point_coords: Tensor | None = None,
        point_labels: Tensor | None = None,
        mask_inputs: Tensor | None = None,
        multimask_output: bool = False,
    ) -> SamOutput:
        """Prompt encoder + mask decoder on (memory-conditioned) features ``pix_feat``.

        Points are in model pixels (0..S) with labels 1/0 (pos/neg), 2/3 (box corners),
        -1 (padding). ``mask_inputs`` are logits at any size (resized to the prompt size).
        """
        raw = self.decode_all(pix_feat, high_res, point_coords, point_labels, mask_inputs)
        return finish_decoding(raw, multimask_output, self.no_obj_ptr, self.image_size, self.stability_rule)

    @property
    def stability_rule(self) -> tuple[float, float] | None:
        """(delta, threshold) of Meta's dynamic single-mask fallback, or None when off."""
        cfg = self.config
        if not cfg.dynamic_multimask_via_stability:
            return None
        return cfg.dynamic_multimask_stability_delta, cfg.dynamic_multimask_stability_thresh

    def decode_all(
        self,
        pix_feat: Tensor,
        high_res: list[Tensor],
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_inputs: Tensor | None,
        pad_missing_points: bool = True,
    ) -> DecoderOutputs:
        """All four masks, IoUs and object pointers, without selection (export-friendly).

        Without clicks, Meta's video heads (``_forward_sam_heads``) send one padding point;
        its image predictor sends no point token at all: ``pad_missing_points=False``.
        """
        b = pix_feat.shape[0]
        if point_coords is None and pad_missing_points:
            point_coords = pix_feat.new_zeros(b, 1, 2)
            point_labels = -torch.ones(b, 1, dtype=torch.int32, device=pix_feat.device)
        mask_prompt = None
        if mask_inputs is not None:
            size = self.sam_prompt_encoder.mask_input_size
            mask_prompt = mask_inputs
            if tuple(mask_inputs.shape[-2:]) != tuple(size):
                mask_prompt = F.interpolate(
                    mask_inputs.float(), size=size, mode="bilinear", align_corners=False, antialias=True
                )
        points = None if point_coords is None else (point_coords, point_labels)
        sparse, dense = self.sam_prompt_encoder(points=points, boxes=None, masks=mask_prompt)
        masks, ious, tokens, obj_logits = self.sam_mask_decoder.predict_masks(
            image_embeddings=pix_feat,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=high_res,
        )
        return DecoderOutputs(masks, ious, self.obj_ptr_proj(tokens), obj_logits)

    def mask_as_output(self, pix_feat: Tensor, high_res: list[Tensor], mask_inputs: Tensor) -> SamOutput:
        """A mask prompt becomes the output directly (logits +/-10); SAM only makes its pointer."""
        mask = mask_inputs.float()
        ptr = self.sam_heads(pix_feat, high_res, mask_inputs=self.mask_downsample(mask)).obj_ptr
        return mask_prompt_output(mask, ptr, self.no_obj_ptr)

    # ----------------------------------------------------------------- memory
    def no_memory_features(self, vision_feats: Tensor) -> Tensor:
        """Initial conditioning frame: features + ``no_mem_embed`` instead of attention."""
        return vision_feats + self.no_mem_embed.view(1, -1, 1, 1)

    def memory_pos_enc(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """A memory frame's position encoding, identical for every frame and object.

        SAM 2 / 2.1: the memory encoder's, 1 x 64 x H x W. EdgeTAM: the perceiver latents',
        1 x N x 64 (zeros for the global latents, the 16 x 16 grid's sine encoding after them).
        """
        h = self.feat_size
        probe = torch.empty(1, self.mem_dim, h, h, device=self.device, dtype=dtype)
        pos = self.memory_encoder.position_encoding(probe)
        if self.spatial_perceiver is not None:
            _, pos = self.spatial_perceiver(probe.zero_(), pos)
        return pos

    def memory_tokens(
        self, maskmem_features: Tensor, maskmem_pos: Tensor, t_pos: int | Tensor
    ) -> tuple[Tensor, Tensor]:
        """Memory frames as attention tokens with position + temporal encoding.

        ``maskmem_features``: S x B x 64 x H x W (S frames per object, e.g. bank slots) or
        B x 64 x H x W for one frame; ``maskmem_pos``: broadcastable to one frame.
        ``t_pos`` is Meta's slot, per frame (int) or per frame and object (S x B): 0 for
        conditioning frames, 1..num_maskmem-1 for the frame ``num_maskmem - t_pos`` back.
        Returns (S*HW) x B x 64 tokens and their encodings, frames in order.
        """
        if self.mem_tokens is not None:  # frames of T tokens (spatial perceiver): S x B x T x 64
            if maskmem_features.ndim == 3:
                maskmem_features = maskmem_features.unsqueeze(0)
            s, b, n, c = maskmem_features.shape
            tokens = maskmem_features.permute(0, 2, 1, 3).reshape(s * n, b, c)
            pos = maskmem_pos.reshape(-1, n, c).expand(b, n, c).permute(1, 0, 2).reshape(1, n, b, c)
        else:  # frames of H x W maps: S x B x 64 x H x W
            if maskmem_features.ndim == 4:
                maskmem_features = maskmem_features.unsqueeze(0)
            s, b, c, h, w = maskmem_features.shape
            n = h * w
            tokens = maskmem_features.permute(0, 3, 4, 1, 2).reshape(s * n, b, c)
            pos = maskmem_pos.expand(b, c, h, w).permute(2, 3, 0, 1).reshape(1, n, b, c)
        tpos_index = self.num_maskmem - 1 - torch.as_tensor(t_pos, device=pos.device)
        tpos = self.maskmem_tpos_enc.view(self.num_maskmem, c)[tpos_index.expand(s, b)]
        pos = (pos + tpos.to(pos.dtype).unsqueeze(1)).reshape(s * n, b, c)
        return tokens, pos

    def obj_ptr_tokens(self, obj_ptrs: Tensor, t_diffs: Tensor, max_obj_ptrs: int) -> tuple[Tensor, Tensor]:
        """Object pointers (N x B x C) at signed frame distances ``t_diffs`` -> tokens.

        ``t_diffs`` is N (shared by the batch) or N x B (per object). Each 256-d pointer is
        split into 256/64 tokens of the memory width; SAM 2.1 adds a projected sine encoding
        of ``t_diff / (max_obj_ptrs - 1)``, SAM 2.0 a zero encoding.
        """
        n, b, c = obj_ptrs.shape
        if self.config.is_v21:
            t_diffs = t_diffs.to(obj_ptrs.device, torch.float32)
            t_diffs = t_diffs.view(n, 1).expand(n, b) if t_diffs.ndim == 1 else t_diffs
            pos = sine_pe_1d(t_diffs / (max_obj_ptrs - 1), dim=c)
            pos = self.obj_ptr_tpos_proj(pos.to(obj_ptrs.dtype))
        else:
            pos = obj_ptrs.new_zeros(n, b, self.mem_dim)
        split = c // self.mem_dim
        if split > 1:
            obj_ptrs = obj_ptrs.reshape(n, b, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(split, dim=0)
        return obj_ptrs, pos

    def condition_on_memory(
        self,
        vision_feats: Tensor,
        vision_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        num_obj_ptr_tokens: int,
        memory_mask: Tensor | None = None,
    ) -> Tensor:
        """Memory attention: B x C x H x W features attend to memory tokens (M x B x 64)."""
        b, c, h, w = vision_feats.shape
        curr = vision_feats.flatten(2).permute(2, 0, 1)
        curr_pos = vision_pos.flatten(2).permute(2, 0, 1)
        out = self.memory_attention(
            curr=curr,
            curr_pos=curr_pos,
            memory=memory,
            memory_pos=memory_pos,
            num_obj_ptr_tokens=num_obj_ptr_tokens,
            memory_mask=memory_mask,
        )
        return out.permute(1, 2, 0).reshape(b, c, h, w)

    def condition_on_bank(
        self,
        vision_feats: Tensor,
        vision_pos: Tensor,
        mem_feats: Tensor,
        mem_pos: Tensor,
        mem_t_pos: Tensor,
        mem_valid: Tensor,
        obj_ptrs: Tensor,
        ptr_t_diff: Tensor,
        ptr_valid: Tensor,
    ) -> Tensor:
        """Memory attention over a fixed-size bank with validity masks (tracker and export).

        ``mem_feats`` S x B x 64 x H x W with Meta slot numbers ``mem_t_pos`` (S x B) and
        ``mem_valid`` (S x B); ``obj_ptrs`` P x B x 256 at frame distances ``ptr_t_diff`` with
        ``ptr_valid`` (P x B). Invalid slots are masked out of the attention, which equals
        leaving them out because padding is in whole frames and whole pointers.
        """
        b, _, h, w = vision_feats.shape
        slots, num_ptrs = mem_valid.shape[0], ptr_valid.shape[0]
        tokens, pos = self.memory_tokens(mem_feats, mem_pos, mem_t_pos)
        ptr_tokens, ptr_pos = self.obj_ptr_tokens(obj_ptrs, ptr_t_diff, self.config.max_obj_ptrs_in_encoder)
        split = ptr_tokens.shape[0] // max(num_ptrs, 1)  # memory tokens per pointer (256 / 64)
        # Token masks in token order: frame s covers tokens s*HW .. s*HW + HW - 1, pointer p
        # covers p*split .. p*split + split - 1. expand+reshape (not repeat_interleave) keeps
        # exported graphs free of data-dependent repeats.
        n = h * w if self.mem_tokens is None else self.mem_tokens  # tokens per memory frame
        frame_mask = mem_valid[:, None, :].expand(slots, n, b).reshape(slots * n, b)
        ptr_mask = ptr_valid[:, None, :].expand(num_ptrs, split, b).reshape(num_ptrs * split, b)
        mask = torch.cat([frame_mask, ptr_mask]).transpose(0, 1)  # B x M, True = attend
        return self.condition_on_memory(
            vision_feats,
            vision_pos,
            torch.cat([tokens, ptr_tokens]),
            torch.cat([pos, ptr_pos]),
            num_obj_ptr_tokens=ptr_tokens.shape[0],
            memory_mask=mask,
        )

    def encode_memory(
        self,
        vision_feats: Tensor,
        high_res_masks: Tensor,
        object_score_logits: Tensor,
        is_mask_from_pts: bool | Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Memory encoder on the frame's (un-conditioned) features and predicted mask.

        ``is_mask_from_pts`` (bool, or B bools for a mixed batch): masks that answer a
        prompt are binarised, tracked ones go through a sigmoid, as in Meta's predictor.
        Returns B x 64 x H x W memory features and their position encoding. Absent objects
        (score <= 0) get ``no_obj_embed_spatial`` added (SAM 2.1). EdgeTAM's spatial perceiver
        then compresses the frame: B x N x 64 latent tokens (N = 512) and their encoding.
        """
        cfg = self.config
        if cfg.non_overlap_masks_for_mem_enc:
            high_res_masks = non_overlapping(high_res_masks)
        high_res_masks = high_res_masks.to(vision_feats.dtype)
        binarize = torch.as_tensor(is_mask_from_pts, device=high_res_masks.device)
        binarize = binarize & cfg.binarize_mask_from_pts_for_mem_enc
        if binarize.ndim:
            mask = torch.where(
                binarize.view(-1, 1, 1, 1), (high_res_masks > 0).to(high_res_masks.dtype), torch.sigmoid(high_res_masks)
            )
        elif binarize:
            mask = (high_res_masks > 0).to(high_res_masks.dtype)
        else:
            mask = torch.sigmoid(high_res_masks)
        mask = mask * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        out = self.memory_encoder(vision_feats, mask, skip_mask_sigmoid=True)
        features, pos = out["vision_features"], out["vision_pos_enc"][-1]
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).to(features.dtype)
            features = features + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        if self.spatial_perceiver is not None:
            features, pos = self.spatial_perceiver(features, pos)
        return features, pos


def gate_obj_ptr(obj_ptr: Tensor, present: Tensor, no_obj_ptr: Tensor) -> Tensor:
    """Replace the pointer of an absent object (``present`` 0) by the learned ``no_obj_ptr``."""
    return present * obj_ptr + (1 - present) * no_obj_ptr


def finish_decoding(
    raw: DecoderOutputs,
    multimask: bool,
    no_obj_ptr: Tensor,
    image_size: int,
    stability: tuple[float, float] | None,
) -> SamOutput:
    """Meta's post-decoder steps, shared by all backends.

    Picks single or multimask outputs (with the stability fallback), writes the
    no-object score where the object-score head says absent, chooses the best mask by
    predicted IoU, and gates the object pointer. Only the chosen mask is upsampled to the
    model resolution (upsampling is per channel, so this equals Meta's upsample-then-pick).
    """
    masks, ious, ptrs = select_masks(
        raw.masks,
        raw.ious,
        raw.obj_ptrs,
        multimask,
        use_multimask_token_for_obj_ptr=True,
        dynamic_multimask_via_stability=stability is not None,
        stability_delta=stability[0] if stability else 0.05,
        stability_thresh=stability[1] if stability else 0.98,
    )
    present = raw.object_score_logits > 0
    low_multi = torch.where(present[:, None, None], masks, NO_OBJ_SCORE).float()
    ptr = ptrs[:, 0]
    if multimask:
        best = torch.argmax(ious, dim=-1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        low = low_multi[rows, best].unsqueeze(1)
        if ptrs.shape[1] > 1:
            ptr = ptrs[rows, best]
    else:
        low = low_multi
    high = F.interpolate(low, size=(image_size, image_size), mode="bilinear", align_corners=False)
    obj_ptr = gate_obj_ptr(ptr, present.to(ptr.dtype), no_obj_ptr)
    return SamOutput(low_multi, ious, low, high, obj_ptr, raw.object_score_logits)


def mask_prompt_output(mask: Tensor, obj_ptr: Tensor, no_obj_ptr: Tensor) -> SamOutput:
    """Meta's ``_use_mask_as_output`` given the pointer SAM made for the downsampled mask.

    The binary mask (B x 1 x S x S) becomes logits +/-10 at full and (antialiased) quarter
    resolution; an empty mask means "absent" for the score and the pointer.
    """
    scale, bias = 20.0, -10.0
    high = mask * scale + bias
    low = F.interpolate(
        high, size=(high.shape[-2] // 4, high.shape[-1] // 4), mode="bilinear", align_corners=False, antialias=True
    )
    present = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()
    return SamOutput(
        low,
        mask.new_ones(mask.shape[0], 1),
        low,
        high,
        gate_obj_ptr(obj_ptr, present, no_obj_ptr),
        scale * present + bias,
    )


def non_overlapping(pred_masks: Tensor) -> Tensor:
    """Keep only the highest-scoring object per pixel (others clamped to <= -10)."""
    if pred_masks.shape[0] == 1:
        return pred_masks
    winner = torch.argmax(pred_masks, dim=0, keepdim=True)
    rows = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None, None, None]
    return torch.where(winner == rows, pred_masks, torch.clamp(pred_masks, max=-10.0))
