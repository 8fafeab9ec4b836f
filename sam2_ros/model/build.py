"""Build a SAM 2 / SAM 2.1 / EdgeTAM model by name and load Meta's checkpoints unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from sam2_ros.model.config import CONFIGS, Sam2Config, get_config
from sam2_ros.model.hiera import Hiera
from sam2_ros.model.image_encoder import FpnNeck, ImageEncoder
from sam2_ros.model.mask_decoder import MaskDecoder
from sam2_ros.model.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2_ros.model.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2_ros.model.perceiver import PerceiverResampler
from sam2_ros.model.position_encoding import PositionEmbeddingSine
from sam2_ros.model.prompt_encoder import PromptEncoder
from sam2_ros.model.repvit import RepViT
from sam2_ros.model.rope import RoPEAttention, RoPEAttentionV2
from sam2_ros.model.sam2 import Sam2Model
from sam2_ros.model.transformer import TwoWayTransformer

D_MODEL = 256  # neck / decoder / memory-attention width in every released model
MEM_DIM = 64  # memory-encoder output width in every released model


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded into the requested model (with what to do)."""


def _image_encoder(cfg: Sam2Config) -> ImageEncoder:
    trunk = RepViT(**cfg.trunk) if cfg.trunk_type == "repvit" else Hiera(**cfg.trunk)
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=D_MODEL, normalize=True, temperature=10000),
        d_model=D_MODEL,
        backbone_channel_list=list(cfg.backbone_channel_list),
        fpn_top_down_levels=[2, 3],
        fpn_interp_model="nearest",
    )
    return ImageEncoder(trunk=trunk, neck=neck, scalp=1)


def _memory_attention(cfg: Sam2Config) -> MemoryAttention:
    feat = (cfg.feat_size, cfg.feat_size)
    if cfg.is_edgetam:
        # Memory frames are perceiver latents: global ones unrotated, then a 16 x 16 grid.
        grid = (cfg.perceiver_grid, cfg.perceiver_grid)
        cross_attention = RoPEAttentionV2(
            embedding_dim=D_MODEL,
            num_heads=1,
            downsample_rate=1,
            dropout=0.1,
            kv_in_dim=MEM_DIM,
            rope_theta=10000.0,
            q_sizes=feat,
            k_sizes=grid,
            k_prefix_tokens=cfg.perceiver_latents,
        )
    else:
        cross_attention = RoPEAttention(
            rope_theta=10000.0,
            feat_sizes=feat,
            rope_k_repeat=True,
            embedding_dim=D_MODEL,
            num_heads=1,
            downsample_rate=1,
            dropout=0.1,
            kv_in_dim=MEM_DIM,
        )
    layer = MemoryAttentionLayer(
        activation="relu",
        dim_feedforward=2048,
        dropout=0.1,
        pos_enc_at_attn=False,
        self_attention=RoPEAttention(
            rope_theta=10000.0, feat_sizes=feat, embedding_dim=D_MODEL, num_heads=1, downsample_rate=1, dropout=0.1
        ),
        d_model=D_MODEL,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        cross_attention=cross_attention,
    )
    return MemoryAttention(d_model=D_MODEL, pos_enc_at_input=True, layer=layer, num_layers=cfg.memory_attention_layers)


def _spatial_perceiver(cfg: Sam2Config) -> PerceiverResampler | None:
    if not cfg.is_edgetam:
        return None
    return PerceiverResampler(
        dim=MEM_DIM,
        depth=2,
        position_encoding=PositionEmbeddingSine(num_pos_feats=MEM_DIM, normalize=True, temperature=10000),
        dim_head=64,
        heads=1,
        num_latents=cfg.perceiver_latents,
        num_latents_2d=cfg.perceiver_latents_2d,
        ff_mult=4,
        use_self_attn=True,
    )


def _memory_encoder() -> MemoryEncoder:
    return MemoryEncoder(
        out_dim=MEM_DIM,
        position_encoding=PositionEmbeddingSine(num_pos_feats=MEM_DIM, normalize=True, temperature=10000),
        mask_downsampler=MaskDownSampler(kernel_size=3, stride=2, padding=1),
        fuser=Fuser(
            layer=CXBlock(dim=D_MODEL, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True),
            num_layers=2,
        ),
    )


def _sam_heads(cfg: Sam2Config) -> tuple[PromptEncoder, MaskDecoder]:
    emb = cfg.feat_size
    prompt_encoder = PromptEncoder(
        embed_dim=D_MODEL,
        image_embedding_size=(emb, emb),
        input_image_size=(cfg.image_size, cfg.image_size),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=D_MODEL, mlp_dim=2048, num_heads=8),
        transformer_dim=D_MODEL,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        dynamic_multimask_via_stability=cfg.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=cfg.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=cfg.dynamic_multimask_stability_thresh,
    )
    return prompt_encoder, mask_decoder


def build_from_config(cfg: Sam2Config) -> Sam2Model:
    """A randomly initialised model for ``cfg`` (eval mode)."""
    prompt_encoder, mask_decoder = _sam_heads(cfg)
    model = Sam2Model(
        cfg,
        _image_encoder(cfg),
        _memory_attention(cfg),
        _memory_encoder(),
        prompt_encoder,
        mask_decoder,
        spatial_perceiver=_spatial_perceiver(cfg),
    )
    return model.eval()


def build_sam2(
    name: str,
    checkpoint: str | os.PathLike | None = None,
    image_size: int = 1024,
    device: str | torch.device = "cpu",
    **overrides,
) -> Sam2Model:
    """Build SAM 2 / 2.1 model ``name`` (e.g. ``"sam2.1_hiera_t"``) or ``"edgetam"``, optionally loading weights.

    ``checkpoint``: Meta's ``.pt`` (``{"model": state_dict}``, e.g. ``edgetam.pt``) or a ``.safetensors`` file.
    Loading is strict; a mismatch raises :class:`CheckpointError` naming the missing,
    unexpected and mis-shaped keys and the model name that fits the file.
    ``overrides``: :class:`Sam2Config` fields (e.g. ``fill_hole_area=0``).
    """
    cfg = get_config(name, image_size)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    model = build_from_config(cfg)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.to(device)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; download Meta's weights with "
            f"`sam2-ros download MODEL` (e.g. sam2.1_hiera_tiny)"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # noqa: PLC0415 - optional dependency, only for .safetensors

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or not a checkpoint at all
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} holds no state_dict (expected {{'model': state_dict}} or a flat dict of tensors)"
        )
    return state


def _expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def suggest_model(state: dict[str, torch.Tensor]) -> str | None:
    """The released model whose key names and shapes fit ``state`` exactly, if any."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for name, cfg in CONFIGS.items():
        if _expected_shapes(_shape_only_model(cfg)) == shapes:
            return name
    return None


def _shape_only_model(cfg: Sam2Config) -> nn.Module:
    """Build on the meta device: shapes without allocating or initialising weights."""
    with torch.device("meta"):
        return build_from_config(cfg)


def _mismatch_report(
    state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], model_name: str, source: str
) -> str | None:
    """A readable description of how ``state`` differs from ``expected``; None if it fits."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if not (missing or unexpected or misshaped):
        return None

    def show(keys: list[str]) -> str:
        if not keys:
            return "none"
        return ", ".join(keys[:8]) + (f" … (+{len(keys) - 8} more)" if len(keys) > 8 else "")

    lines = [
        f"checkpoint {source} does not fit model {model_name}:",
        f"  missing keys ({len(missing)}): {show(missing)}",
        f"  unexpected keys ({len(unexpected)}): {show(unexpected)}",
        f"  mis-shaped keys ({len(misshaped)}): "
        + show([f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in misshaped]),
    ]
    fit = suggest_model(state)
    if fit is not None:
        lines.append(f"  this checkpoint fits model {fit!r}: pass --model {fit}")
    return "\n".join(lines)


def verify_checkpoint(checkpoint: str | os.PathLike, name: str) -> None:
    """Check that ``checkpoint`` fits model ``name`` without building real weights."""
    cfg = get_config(name)
    state = read_state_dict(checkpoint)
    report = _mismatch_report(state, _expected_shapes(_shape_only_model(cfg)), cfg.name, str(checkpoint))
    if report:
        raise CheckpointError(report)


def load_checkpoint(model: Sam2Model, checkpoint: str | os.PathLike) -> None:
    """Strictly load ``checkpoint`` into ``model`` or explain precisely why not."""
    state = read_state_dict(checkpoint)
    report = _mismatch_report(state, _expected_shapes(model), model.config.name, str(checkpoint))
    if report:
        raise CheckpointError(report)
    model.load_state_dict(state, strict=True)
