"""Image mode vs Meta's ``SAM2ImagePredictor`` (sam2==1.1.0) on identical random weights.

Both predictors encode the same real image (``../shared/data/images/groceries.jpg``, not
square, so x and y scale differently) at a reduced model size and answer the same
prompts: clicks (positive and negative), boxes, box + clicks, a mask prompt fed back from
an earlier answer, and a batch of boxes (several objects on one encoded image), with
``multimask_output`` on and off. Compared: full-resolution mask logits and binary masks,
predicted IoUs and the low-res logits.

Tolerances (fp32, CPU): the same operations run in the same order, so differences stay at
rounding level; ``ATOL`` 1e-4 on logits of magnitude ~1-30, ``ATOL_IOU`` 1e-5 on IoUs.
Binary masks may differ only where a logit lies within ``ATOL`` of the threshold. The
negative controls (tracker-style bicubic preprocessing, x/y swapped, a padding point sent
with a mask-only prompt) move logits far beyond these tolerances.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sam2_ros.image import SamImagePredictor
from sam2_ros.image import predictor as predictor_module
from sam2_ros.tracking import PromptError, TrackerError
from sam2_ros.tracking.imageops import preprocess
from tests.official_model import make_pair
from tests.parity import assert_differs, assert_parity
from tests.torchvision_standin import fake_torchvision, official_feat_sizes

ATOL = 1e-4
ATOL_IOU = 1e-5
SIZE = 256


@pytest.fixture(scope="module")
def image(data_dir) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(data_dir / "images" / "groceries.jpg")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def predictors(image):
    """(Meta's predictor, ours), both with ``image`` set, on identical weights."""
    theirs_model, ours_model = make_pair("sam2.1_hiera_t", SIZE, seed=3)
    with fake_torchvision():
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        theirs = SAM2ImagePredictor(theirs_model)
        theirs._bb_feat_sizes = official_feat_sizes(SIZE)
        theirs.set_image(image)
    ours = SamImagePredictor(ours_model)
    ours.set_image(image)
    return theirs, ours


def _both(predictors, **prompt):
    theirs, ours = predictors
    with torch.inference_mode():
        t = theirs.predict(**prompt, return_logits=True)
        o = ours.predict(**prompt, return_logits=True)
    return t, o


def _compare(name: str, t, o) -> None:
    (t_logits, t_iou, t_low), (o_logits, o_iou, o_low) = t, o
    assert_parity(f"image {name}: mask logits", torch.from_numpy(o_logits), torch.from_numpy(t_logits), ATOL)
    assert_parity(f"image {name}: predicted IoU", torch.from_numpy(o_iou), torch.from_numpy(t_iou), ATOL_IOU)
    assert_parity(f"image {name}: low-res logits", torch.from_numpy(o_low), torch.from_numpy(t_low), ATOL)
    differ = (o_logits > 0) != (t_logits > 0)
    assert not (differ & (np.abs(t_logits) > ATOL)).any(), f"{name}: binary masks differ away from the threshold"


H, W = 534, 800
CASES = {
    "1 click, multimask": dict(
        point_coords=np.array([[420.0, 260.0]]), point_labels=np.array([1]), multimask_output=True
    ),
    "3 clicks (1 negative), single": dict(
        point_coords=np.array([[420.0, 260.0], [300.0, 100.0], [700.0, 450.0]]),
        point_labels=np.array([1, 1, 0]),
        multimask_output=False,
    ),
    "1 click, single (stability fallback)": dict(
        point_coords=np.array([[100.0, 400.0]]), point_labels=np.array([1]), multimask_output=False
    ),
    "box, single": dict(box=np.array([120.0, 80.0, 610.0, 400.0]), multimask_output=False),
    "box + click, multimask": dict(
        box=np.array([120.0, 80.0, 610.0, 400.0]),
        point_coords=np.array([[200.0, 150.0]]),
        point_labels=np.array([0]),
        multimask_output=True,
    ),
    "normalised click": dict(
        point_coords=np.array([[0.3, 0.6]]), point_labels=np.array([1]), normalize_coords=False, multimask_output=True
    ),
    "3 boxes batched, multimask": dict(
        box=np.array([[120.0, 80.0, 610.0, 400.0], [0.0, 0.0, 300.0, 200.0], [500.0, 300.0, 799.0, 533.0]]),
        multimask_output=True,
    ),
    "3 boxes batched, single": dict(
        box=np.array([[120.0, 80.0, 610.0, 400.0], [0.0, 0.0, 300.0, 200.0], [500.0, 300.0, 799.0, 533.0]]),
        multimask_output=False,
    ),
    "2 objects x 2 clicks batched": dict(
        point_coords=np.array([[[420.0, 260.0], [430.0, 300.0]], [[100.0, 100.0], [150.0, 90.0]]]),
        point_labels=np.array([[1, 1], [1, 0]]),
        multimask_output=False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_prompts_match_official(predictors, case):
    t, o = _both(predictors, **CASES[case])
    _compare(case, t, o)
    n_masks = 3 if CASES[case]["multimask_output"] else 1
    assert o[0].shape[-3:] == (n_masks, H, W) and o[2].shape[-2:] == (SIZE // 4, SIZE // 4)


def test_mask_prompt_feedback_matches_official(predictors):
    """Meta's refinement loop: the best low-res logits go back in as ``mask_input``."""
    theirs, ours = predictors
    first = CASES["1 click, multimask"]
    _, iou, low = ours.predict(**first)
    mask_input = low[np.argmax(iou)][None]
    t, o = _both(
        predictors,
        point_coords=np.array([[420.0, 260.0], [380.0, 200.0]]),
        point_labels=np.array([1, 1]),
        mask_input=mask_input,
        multimask_output=False,
    )
    _compare("clicks + mask prompt", t, o)
    t, o = _both(predictors, mask_input=mask_input, multimask_output=True)
    _compare("mask prompt only", t, o)


def test_binary_masks_match_official(predictors):
    theirs, ours = predictors
    prompt = CASES["3 boxes batched, single"]
    with torch.inference_mode():
        t_masks, _, _ = theirs.predict(**prompt)
    o_masks, _, _ = ours.predict(**prompt)
    assert o_masks.dtype == t_masks.dtype and o_masks.shape == t_masks.shape == (3, 1, H, W)
    assert (o_masks != t_masks).mean() < 1e-5


def test_wrong_variants_fail(predictors, image, monkeypatch):
    """Negative controls: each deliberate slip exceeds the tolerance the parity tests use."""
    theirs, ours = predictors
    prompt = CASES["1 click, multimask"]
    with torch.inference_mode():
        t_logits, _, t_low = theirs.predict(**prompt, return_logits=True)
    # x and y swapped (scaled by the wrong side)
    swapped = dict(prompt, point_coords=np.array([[260.0 * W / H, 420.0 * H / W]]))
    o_logits, _, _ = ours.predict(**swapped, return_logits=True)
    assert_differs("swapped x/y", torch.from_numpy(o_logits), torch.from_numpy(t_logits), ATOL)
    # the tracker's (video loader's) bicubic preprocessing instead of Meta's image transforms
    wrong = SamImagePredictor(ours.model)
    monkeypatch.setattr(predictor_module, "preprocess_image", preprocess)
    wrong.set_image(image)
    _, _, o_low = wrong.predict(**prompt, return_logits=True)
    assert_differs("bicubic preprocessing", torch.from_numpy(o_low), torch.from_numpy(t_low), ATOL)
    # a mask-only prompt with the video heads' padding point
    _, iou, low = ours.predict(**prompt)
    mask_input = torch.from_numpy(low[np.argmax(iou)][None, None])
    with torch.inference_mode():
        _, _, t_low = theirs.predict(mask_input=mask_input[0].numpy(), multimask_output=True)
        m = ours.model
        raw = m.decode_all(ours.get_image_embedding(), ours._high_res, None, None, mask_input, pad_missing_points=True)
        padded, _, _ = m.sam_mask_decoder.select(raw.masks, raw.ious, raw.obj_ptrs, True)
    assert_differs("padding point with a mask prompt", padded[0].clamp(-32, 32), torch.from_numpy(t_low), ATOL)


def test_hole_filling_matches_independent_labelling(predictors):
    """``max_hole_area``/``max_sprinkle_area`` (Meta's CUDA-only step, skipped by Meta on CPU) vs scipy."""
    ndimage = pytest.importorskip("scipy.ndimage")
    _, ours = predictors
    prompt = CASES["3 boxes batched, multimask"]
    _, _, low = ours.predict(**prompt)
    low = torch.from_numpy(low)
    area = 6
    filler = SamImagePredictor(ours.model, max_hole_area=area, max_sprinkle_area=area)
    cleaned = filler._clean_small_regions(low).numpy()
    expected = low.numpy().copy()
    eight = np.ones((3, 3))
    for idx in np.ndindex(expected.shape[:2]):
        plane = expected[idx]
        labels, n = ndimage.label(plane <= 0, structure=eight)
        sizes = np.bincount(labels.ravel())
        plane[(labels > 0) & (sizes[labels] <= area)] = 10.0
        labels, n = ndimage.label(plane > 0, structure=eight)
        sizes = np.bincount(labels.ravel())
        plane[(labels > 0) & (sizes[labels] <= area)] = -10.0
    assert (cleaned != low.numpy()).any(), "no small region in the test masks: the test would not test anything"
    np.testing.assert_array_equal(cleaned, expected)


def test_bad_prompts_are_refused(predictors):
    _, ours = predictors
    with pytest.raises(PromptError, match="outside the 800x534 image"):
        ours.predict(point_coords=np.array([[900.0, 10.0]]), point_labels=np.array([1]))
    with pytest.raises(PromptError, match="point_labels must be given"):
        ours.predict(point_coords=np.array([[10.0, 10.0]]))
    with pytest.raises(PromptError, match="labels"):
        ours.predict(point_coords=np.array([[10.0, 10.0]]), point_labels=np.array([1, 1]))
    with pytest.raises(PromptError, match="top-left corner first"):
        ours.predict(box=np.array([300.0, 10.0, 100.0, 50.0]))
    with pytest.raises(PromptError, match="2 boxes but 3 point prompts"):
        ours.predict(box=np.zeros((2, 4)) + [0, 0, 5, 5], point_coords=np.ones((3, 1, 2)), point_labels=np.ones((3, 1)))
    with pytest.raises(TrackerError, match="no image set"):
        SamImagePredictor(ours.model).predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
