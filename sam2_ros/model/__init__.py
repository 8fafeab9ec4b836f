"""SAM 2 / SAM 2.1 and EdgeTAM in PyTorch with Meta's parameter names (official checkpoints load unchanged).

>>> from sam2_ros.model import build_sam2
>>> model = build_sam2("sam2.1_hiera_t", checkpoint="sam2.1_hiera_tiny.pt")
>>> edge = build_sam2("edgetam", checkpoint="edgetam.pt")
"""

from sam2_ros.model.build import (
    CheckpointError,
    build_from_config,
    build_sam2,
    load_checkpoint,
    read_state_dict,
    suggest_model,
    verify_checkpoint,
)
from sam2_ros.model.config import CONFIGS, Sam2Config, canonical_name, checkpoint_filename, get_config
from sam2_ros.model.sam2 import NO_OBJ_SCORE, DecoderOutputs, ImageFeatures, Sam2Model, SamOutput, finish_decoding

__all__ = [
    "CONFIGS",
    "NO_OBJ_SCORE",
    "CheckpointError",
    "DecoderOutputs",
    "finish_decoding",
    "ImageFeatures",
    "Sam2Config",
    "Sam2Model",
    "SamOutput",
    "build_from_config",
    "build_sam2",
    "canonical_name",
    "checkpoint_filename",
    "get_config",
    "load_checkpoint",
    "read_state_dict",
    "suggest_model",
    "verify_checkpoint",
]
