"""Build Meta's official models (``sam2==1.1.0``) with controlled random weights.

Shared by the end-to-end parity tests. The official config files are selected by our
model names; Meta's post-processing overrides are applied explicitly (not via
``apply_postprocessing``) so hole filling can be switched off: on CPU Meta's CUDA
extension is absent and its hole filling is skipped anyway.
"""

from __future__ import annotations

import torch

from sam2_ros.model import Sam2Model, build_sam2, canonical_name
from tests.parity import load_same_weights, official, randomize_

OFFICIAL_YAML = {
    f"{p}_hiera_{s}": f"configs/{d}/{p}_hiera_{s}.yaml"
    for p, d in (("sam2", "sam2"), ("sam2.1", "sam2.1"))
    for s in ("t", "s", "b+", "l")
}


def official_overrides(image_size: int, fill_hole_area: int = 0, binarize: bool = True) -> list[str]:
    return [
        f"++model.image_size={image_size}",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
        "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        f"++model.binarize_mask_from_pts_for_mem_enc={str(binarize).lower()}",
        f"++model.fill_hole_area={fill_hole_area}",
    ]


@torch.no_grad()
def make_pair(
    name: str, image_size: int, seed: int = 0, std: float = 0.05, obj_score_bias: float = 8.0
) -> tuple[torch.nn.Module, Sam2Model]:
    """(official SAM2VideoPredictor, our Sam2Model) sharing identical random weights.

    ``obj_score_bias`` is added to the object-score head's output bias so that objects are
    "present" under random weights (otherwise every mask is the -1024 no-object fill and
    parity would be trivial).
    """
    official()
    from sam2.build_sam import build_sam2_video_predictor

    name = canonical_name(name)
    theirs = build_sam2_video_predictor(
        OFFICIAL_YAML[name],
        None,
        device="cpu",
        apply_postprocessing=False,
        hydra_overrides_extra=official_overrides(image_size),
    )
    randomize_(theirs, seed=seed, std=std)
    theirs.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += obj_score_bias
    ours = build_sam2(name, image_size=image_size, fill_hole_area=0)
    load_same_weights(ours, theirs)
    return theirs.eval(), ours.eval()
