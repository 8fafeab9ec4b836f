"""The eight released SAM 2 / SAM 2.1 configurations and EdgeTAM, selected by name.

Values mirror Meta's ``sam2/configs/sam2{,.1}/*.yaml`` (model section) plus the inference
overrides Meta's builders apply (dynamic multimask via stability; for video, binarised
memory masks from clicks and small-hole filling). Only what differs between the released
models is a field; the rest is fixed by the checkpoints' architecture.

EdgeTAM (Meta Reality Labs, arXiv 2501.07256; ``configs/edgetam.yaml`` of its code) is SAM 2.0's
design with a RepViT-M1 trunk, a 2-D spatial perceiver that compresses each memory frame to
256 global + 256 2-D latents, and two memory-attention layers whose cross-attention rotates
queries and keys on different RoPE grids. Its heads are SAM 2.0's (``version="2"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

#: trunk hyper-parameters per size: embed_dim, num_heads, stages, global_att_blocks,
#: window_pos_embed_bkg_spatial_size, window_spec.
_TRUNKS: dict[str, dict] = {
    "t": dict(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 14, 7),
    ),
    "s": dict(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 11, 2),
        global_att_blocks=(7, 10, 13),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 14, 7),
    ),
    "b+": dict(
        embed_dim=112,
        num_heads=2,
        stages=(2, 3, 16, 3),
        global_att_blocks=(12, 16, 20),
        window_pos_embed_bkg_spatial_size=(14, 14),
        window_spec=(8, 4, 14, 7),
    ),
    "l": dict(
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 16, 8),
    ),
}
_SIZE_ALIASES = {
    "t": "t",
    "tiny": "t",
    "s": "s",
    "small": "s",
    "b+": "b+",
    "base_plus": "b+",
    "bplus": "b+",
    "l": "l",
    "large": "l",
}
_SIZE_LONG = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}

#: EdgeTAM's trunk: timm's ``repvit_m1`` (stage widths and depths).
_REPVIT_M1 = dict(embed_dim=(48, 96, 192, 384), depth=(2, 2, 14, 2))
EDGETAM = "edgetam"


@dataclass(frozen=True)
class Sam2Config:
    """Everything needed to build one SAM 2 variant.

    ``version`` is "2" or "2.1"; SAM 2.1 adds ``no_obj_embed_spatial`` and projected, signed
    temporal encodings of object pointers (``obj_ptr_tpos_proj``).

    ``trunk_type`` is "hiera" (``trunk`` holds Hiera's hyper-parameters) or "repvit" (EdgeTAM).
    ``perceiver_latents``/``perceiver_latents_2d`` > 0 add EdgeTAM's spatial perceiver: each
    memory frame becomes that many global + 2-D latent tokens instead of a feature map.
    """

    name: str
    size: str
    version: str
    image_size: int = 1024
    trunk: dict = field(default_factory=dict)
    # memory
    num_maskmem: int = 7
    max_obj_ptrs_in_encoder: int = 16
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True  # Meta's video-predictor override
    fill_hole_area: int = 8  # Meta's video-predictor override (holes <= this many px)
    non_overlap_masks_for_mem_enc: bool = False
    # architecture beyond the trunk (EdgeTAM differs here)
    trunk_type: str = "hiera"
    memory_attention_layers: int = 4
    perceiver_latents: int = 0
    perceiver_latents_2d: int = 0
    # mask decoder post-processing (Meta's builder overrides)
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1

    @property
    def is_v21(self) -> bool:
        return self.version == "2.1"

    @property
    def is_edgetam(self) -> bool:
        return self.perceiver_latents_2d > 0

    @property
    def backbone_channel_list(self) -> tuple[int, ...]:
        """Trunk output widths, lowest resolution first (the neck's order)."""
        if self.trunk_type == "repvit":
            return tuple(reversed(self.trunk["embed_dim"]))
        d = self.trunk["embed_dim"]
        return (8 * d, 4 * d, 2 * d, d)

    @property
    def perceiver_grid(self) -> int:
        """Side of the perceiver's 2-D latent grid (16 for EdgeTAM), 0 without a perceiver."""
        return round(self.perceiver_latents_2d**0.5)

    @property
    def memory_tokens_per_frame(self) -> int:
        """Memory-attention tokens one memory frame contributes (feature map or latents)."""
        if self.is_edgetam:
            return self.perceiver_latents + self.perceiver_latents_2d
        return self.feat_size**2

    @property
    def feat_size(self) -> int:
        """Side of the stride-16 feature map (64 at 1024 px)."""
        return self.image_size // 16

    def with_overrides(self, **kwargs) -> Sam2Config:
        return replace(self, **kwargs)


def _make(version: str, size: str) -> Sam2Config:
    prefix = "sam2.1" if version == "2.1" else "sam2"
    return Sam2Config(name=f"{prefix}_hiera_{size}", size=size, version=version, trunk=_TRUNKS[size])


CONFIGS: dict[str, Sam2Config] = {c.name: c for v in ("2", "2.1") for s in _TRUNKS for c in [_make(v, s)]}
CONFIGS[EDGETAM] = Sam2Config(
    name=EDGETAM,
    size="repvit_m1",
    version="2",
    trunk=_REPVIT_M1,
    trunk_type="repvit",
    memory_attention_layers=2,
    perceiver_latents=256,
    perceiver_latents_2d=256,
    fill_hole_area=8,  # Meta's video builder forces it after user overrides
)


def checkpoint_filename(name: str) -> str:
    """Meta's file name for a model, e.g. ``sam2.1_hiera_base_plus.pt`` or ``edgetam.pt``."""
    cfg = get_config(name)
    if cfg.is_edgetam:
        return f"{cfg.name}.pt"
    prefix = "sam2.1" if cfg.is_v21 else "sam2"
    return f"{prefix}_hiera_{_SIZE_LONG[cfg.size]}.pt"


def canonical_name(name: str) -> str:
    """Map ``sam2.1_hiera_tiny``, ``sam2.1-hiera-t``, ``sam2.1_hiera_t.yaml`` ... to a CONFIGS key."""
    key = name.strip().lower().replace("-", "_")
    for suffix in (".pt", ".yaml", ".safetensors"):
        key = key.removesuffix(suffix)
    key = key.rsplit("/", 1)[-1]
    if key == EDGETAM:
        return EDGETAM
    for prefix in ("sam2.1_hiera_", "sam2_hiera_"):
        if key.startswith(prefix):
            size = _SIZE_ALIASES.get(key[len(prefix) :])
            if size is not None:
                return prefix + size
    raise KeyError(
        f"unknown SAM 2 model {name!r}; known models: {', '.join(sorted(CONFIGS))} "
        f"(long forms such as 'sam2.1_hiera_base_plus' are accepted too)"
    )


def get_config(name: str, image_size: int = 1024) -> Sam2Config:
    """The configuration for ``name`` at ``image_size`` (default 1024).

    SAM 2 / 2.1 take any multiple of 32 from 64; EdgeTAM any multiple of 256 (its perceiver
    splits the stride-16 memory map into a 16 x 16 grid of windows).
    """
    if image_size % 32 or image_size < 64:
        raise ValueError(f"image_size must be a multiple of 32 and >= 64, got {image_size}")
    cfg = CONFIGS[canonical_name(name)]
    step = 16 * cfg.perceiver_grid
    if step and image_size % step:
        raise ValueError(f"{cfg.name} needs an image_size that is a multiple of {step}, got {image_size}")
    return cfg if image_size == cfg.image_size else cfg.with_overrides(image_size=image_size)
