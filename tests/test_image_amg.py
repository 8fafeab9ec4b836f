"""Automatic masks vs Meta's ``SAM2AutomaticMaskGenerator`` (sam2==1.1.0) on identical weights.

Both generators run on the same real image (``../shared/data/images/groceries.jpg``,
downscaled to 400 x 267 to keep CPU time low) with a reduced model (256 px) and an 8 x 8
point grid. Compared: number of masks, boxes, predicted IoUs, stability scores, the click
of each mask, and each mask's IoU with its counterpart (>= 0.99; measured 1.0, i.e. identical masks).

Random weights and Meta's default filters: the untrained model rates every mask ~0.5
(predicted IoU 0.45-0.6) with stability 0-0.03, so the defaults (0.8 / 0.95) reject
everything and the comparison would be empty. Both sides therefore get the SAME lowered
thresholds (``pred_iou_thresh=0.52``, ``stability_score_thresh=0.6``) and the SAME
weights, with the hypernetwork outputs scaled x10 (sharper logits, so stability spreads
over 0.05-0.8 and the stability filter really selects). Untrained masks also all span the
image, so every box is the full frame and NMS at 0.7 keeps exactly one: the comparison
runs once with ``box_nms_thresh=1.0`` (50 masks survive the filters; NMS removes none)
and once at Meta's 0.7 (NMS picks one of the 50). The NMS itself is tested against a
textbook implementation on random boxes below.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sam2_ros.image import AutomaticMaskGenerator, prompt_tracker_with_records, record_mask, select_records
from sam2_ros.image.amg import batched_nms, uncompressed_rle
from tests.official_model import make_pair
from tests.parity import RECORDED
from tests.torchvision_standin import fake_torchvision, official_feat_sizes, reference_nms

SIZE = 256
SETTINGS = dict(points_per_side=8, pred_iou_thresh=0.52, stability_score_thresh=0.6)
MIN_MASK_IOU = 0.99
#: Predicted IoUs: same fp32 ops, rounding level. Stability scores are pixel-count ratios: a
#: logit within rounding (~1e-6) of the +-offset cut flips one pixel, i.e. 1/union ~ 2e-5
#: here; 1e-3 allows ~50 such pixels, while a wrong offset moves scores by > 0.05.
ATOL_IOU = 1e-5
ATOL_STABILITY = 1e-3


@pytest.fixture(scope="module")
def image(data_dir) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(data_dir / "images" / "groceries.jpg")), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (400, 267), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def models():
    theirs, ours = make_pair("sam2.1_hiera_t", SIZE, seed=3)
    with torch.no_grad():
        for model in (theirs, ours):
            for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(10)
                mlp.layers[-1].bias.mul_(10)
    return theirs, ours


def _official(model, image, **kwargs) -> list[dict]:
    with fake_torchvision():
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        gen = SAM2AutomaticMaskGenerator(model, **kwargs)
        gen.predictor._bb_feat_sizes = official_feat_sizes(SIZE)
        with torch.inference_mode():
            return gen.generate(image)


@pytest.fixture(scope="module")
def official_runs(models, image) -> dict[float, list[dict]]:
    return {nms: _official(models[0], image, box_nms_thresh=nms, **SETTINGS) for nms in (1.0, 0.7)}


def _key(r: dict) -> tuple:
    # the click is bit-identical on both sides; a click's candidates differ in predicted IoU by >> 1e-7
    return (r["point_coords"][0][1], r["point_coords"][0][0], -r["predicted_iou"], r["bbox"])


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def compare_records(ours: list[dict], theirs: list[dict]) -> tuple[float, float, float]:
    """(worst mask IoU, max |IoU-pred diff|, max |stability diff|); asserts count, boxes, clicks, crops.

    Records are paired after sorting both lists by (click, predicted IoU, box).
    """
    assert len(ours) == len(theirs), f"{len(ours)} masks vs Meta's {len(theirs)}"
    worst, d_iou, d_stab = 1.0, 0.0, 0.0
    for o, t in zip(sorted(ours, key=_key), sorted(theirs, key=_key)):
        # areas are covered by the mask IoU: a logit within rounding of 0 may flip one pixel
        assert o["bbox"] == t["bbox"] and o["crop_box"] == t["crop_box"]
        np.testing.assert_allclose(o["point_coords"], t["point_coords"], atol=1e-4)
        d_iou = max(d_iou, abs(o["predicted_iou"] - t["predicted_iou"]))
        d_stab = max(d_stab, abs(o["stability_score"] - t["stability_score"]))
        worst = min(worst, _mask_iou(o["segmentation"], t["segmentation"]))
    return worst, d_iou, d_stab


@pytest.mark.parametrize("nms", [1.0, 0.7])
def test_generator_matches_official(models, image, official_runs, nms):
    theirs = official_runs[nms]
    ours = AutomaticMaskGenerator(models[1], box_nms_thresh=nms, **SETTINGS).generate(image)
    assert len(theirs) >= (30 if nms == 1.0 else 1), "too few masks survive for a meaningful comparison"
    worst, d_iou, d_stab = compare_records(ours, theirs)
    RECORDED[f"amg nms={nms} ({len(ours)} masks): 1 - worst mask IoU"] = (1 - worst, 0.0, 1 - MIN_MASK_IOU)
    RECORDED[f"amg nms={nms}: predicted IoU"] = (d_iou, 0.0, ATOL_IOU)
    RECORDED[f"amg nms={nms}: stability score"] = (d_stab, 0.0, ATOL_STABILITY)
    assert worst >= MIN_MASK_IOU and d_iou <= ATOL_IOU and d_stab <= ATOL_STABILITY
    assert set(ours[0]) == {
        "segmentation",
        "area",
        "bbox",
        "predicted_iou",
        "point_coords",
        "stability_score",
        "crop_box",
    }
    assert ours[0]["segmentation"].dtype == bool and ours[0]["segmentation"].shape == image.shape[:2]


def test_mask_to_mask_refinement_matches_official(models, image):
    """``use_m2m``: every candidate refined once with its own low-res logits as a mask prompt."""
    # refined (single-mask) candidates score 0.57-0.59 / stability 0.13-0.2 under these weights
    settings = dict(SETTINGS, box_nms_thresh=1.0, use_m2m=True, pred_iou_thresh=0.578, stability_score_thresh=0.15)
    theirs = _official(models[0], image, **settings)
    ours = AutomaticMaskGenerator(models[1], **settings).generate(image)
    assert len(theirs) >= 10, "too few masks survive for a meaningful comparison"
    worst, d_iou, d_stab = compare_records(ours, theirs)
    RECORDED[f"amg use_m2m ({len(ours)} masks): 1 - worst mask IoU"] = (1 - worst, 0.0, 1 - MIN_MASK_IOU)
    RECORDED["amg use_m2m: predicted IoU"] = (d_iou, 0.0, ATOL_IOU)
    RECORDED["amg use_m2m: stability score"] = (d_stab, 0.0, ATOL_STABILITY)
    assert worst >= MIN_MASK_IOU and d_iou <= ATOL_IOU and d_stab <= ATOL_STABILITY


@pytest.mark.parametrize(
    "wrong", [dict(stability_score_offset=0.5), dict(box_nms_thresh=0.7), dict(pred_iou_thresh=0.55)]
)
def test_wrong_settings_fail(models, image, official_runs, wrong):
    """Negative controls: one setting off (stability offset, NMS or IoU threshold) breaks parity."""
    settings = dict(SETTINGS, box_nms_thresh=1.0)
    settings.update(wrong)
    ours = AutomaticMaskGenerator(models[1], **settings).generate(image)
    with pytest.raises(AssertionError):
        worst, d_iou, d_stab = compare_records(ours, official_runs[1.0])
        assert worst >= MIN_MASK_IOU and d_iou <= ATOL_IOU and d_stab <= ATOL_STABILITY


def test_defaults_match_meta():
    """Same keyword arguments and defaults as the installed sam2==1.1.0 class."""
    import inspect

    with fake_torchvision():
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    theirs = inspect.signature(SAM2AutomaticMaskGenerator).parameters
    ours = inspect.signature(AutomaticMaskGenerator).parameters
    expected = {k: v.default for k, v in theirs.items() if k not in ("model", "kwargs")}
    assert {k: v.default for k, v in ours.items() if k != "model"} == expected


def test_batched_nms_matches_reference():
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        n = 60
        xy = torch.rand(n, 2, generator=gen) * 100
        wh = torch.rand(n, 2, generator=gen) * 60 + 1
        boxes = torch.cat([xy, xy + wh], dim=1).round()  # integer boxes, as from masks: ties happen
        scores = (torch.rand(n, generator=gen) * 10).round() / 10  # tied scores too
        cats = torch.randint(0, 3, (n,), generator=gen)
        thr = [0.0, 0.3, 0.5, 0.7, 0.95][trial % 5]
        ours = batched_nms(boxes, scores, cats, thr).tolist()
        assert ours == reference_nms(boxes.double().tolist(), scores.double().tolist(), cats.tolist(), thr)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


def test_rle_output_modes(models, image):
    """coco_rle decodes (pycocotools) and uncompressed_rle equals Meta's encoder, to the binary masks."""
    from pycocotools import mask as mask_utils
    from sam2.utils.amg import mask_to_rle_pytorch

    settings = dict(SETTINGS, box_nms_thresh=0.7)
    binary = AutomaticMaskGenerator(models[1], **settings).generate(image)
    coco = AutomaticMaskGenerator(models[1], output_mode="coco_rle", **settings).generate(image)
    for b, c in zip(binary, coco):
        assert isinstance(c["segmentation"]["counts"], str)
        rle = {"size": c["segmentation"]["size"], "counts": c["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), b["segmentation"])
        assert int(mask_utils.area(rle)) == b["area"] == c["area"]
    probe = np.zeros((7, 5), dtype=bool)
    probe[0, 0] = probe[2:5, 1:4] = probe[6, 4] = True
    for mask in (probe, ~probe, np.zeros_like(probe), binary[0]["segmentation"]):
        assert uncompressed_rle(mask) == mask_to_rle_pytorch(torch.from_numpy(mask)[None])[0]
        assert np.array_equal(record_mask({"segmentation": uncompressed_rle(mask)}), mask)


def test_auto_masks_become_tracked_objects(models, image):
    """'Find every object on the first frame, then track them all': records -> add_mask prompts."""
    from sam2_ros.tracking import Sam2Tracker, TorchBackend

    records = AutomaticMaskGenerator(models[1], box_nms_thresh=1.0, **SETTINGS).generate(image)
    chosen = select_records(records, 3)
    assert [r["predicted_iou"] for r in chosen] == sorted((r["predicted_iou"] for r in records), reverse=True)[:3]
    tracker = Sam2Tracker(TorchBackend(models[1]), max_objects=4, fill_hole_area=0)
    tracker.track(image)
    result = prompt_tracker_with_records(tracker, chosen)
    assert result.object_ids == [1, 2, 3]
    for obj, rec in zip(result.objects, chosen):
        # the mask prompt is resized to the model's 256 px and back: edges move by a pixel or so
        assert _mask_iou(obj.mask, rec["segmentation"]) > 0.9
    nxt = tracker.track(image)
    assert nxt.object_ids == [1, 2, 3]
