"""End-to-end parity of the assembled model with Meta's ``sam2==1.1.0``.

* First-frame masks from clicks / a box on the demo images, through the official video
  predictor (``add_new_points_or_box`` on a one-frame "video"). The official *image*
  predictor cannot be used here: it imports torchvision, which must not be installed.
* The glue between modules: memory conditioning with several memories and object
  pointers (SAM 2.1 signed, projected temporal encodings), the memory encoder step and
  mask-as-output, each against the official ``SAM2Base`` method on identical inputs.

Tolerances (fp32, CPU): the full model is one long chain of the same float operations in
the same order, so differences stay at rounding level (measured ~1e-6 or exactly 0);
atol 1e-4 on mask logits of magnitude ~1-10 leaves two decades of margin while any
semantic slip (wrong slot, unsigned distance, missing no-object embedding) moves logits
by >1e-2, as the negative controls show.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from tests.official_model import make_pair
from tests.parity import assert_differs, assert_parity

ATOL = 1e-4
SIZE = 512


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    return make_pair("sam2.1_hiera_t", SIZE, seed=1)


def _official_first_frame(theirs, image_path, tmp_path, **prompt):
    folder = tmp_path / image_path.stem
    folder.mkdir()
    shutil.copy(image_path, folder / "0.jpg")  # the official loader wants integer file names
    state = theirs.init_state(str(folder))
    with torch.inference_mode():
        _, _, masks = theirs.add_new_points_or_box(state, 0, 1, **prompt)
    return state, masks


def _ours_first_frame(ours, state, points, labels):
    """Our model on the same normalised frame: no-memory features -> SAM heads -> video res."""
    h, w = state["video_height"], state["video_width"]
    coords = torch.tensor(points, dtype=torch.float32)[None] / torch.tensor([w, h]) * ours.image_size
    labels = torch.tensor(labels, dtype=torch.int32)[None]
    with torch.inference_mode():
        feats = ours.encode_image(state["images"][0:1].float())
        pix = ours.no_memory_features(feats.vision_feats)
        out = ours.sam_heads(
            pix, feats.high_res, coords, labels, multimask_output=ours.use_multimask(True, labels.shape[1])
        )
        return F.interpolate(out.low_res_masks, size=(h, w), mode="bilinear", align_corners=False)


CASES = {
    "truck.jpg": dict(points=[[500, 375]], labels=[1]),  # one click: multimask + selection
    "groceries.jpg": dict(points=[[600, 400], [700, 500]], labels=[1, 0]),  # pos + neg
    "cars.jpg": dict(box=[100, 200, 900, 700]),  # a box
}


@pytest.mark.parametrize("image", list(CASES))
def test_first_frame_masks_match_official_predictor(pair, data_dir, tmp_path, image):
    theirs, ours = pair
    prompt = CASES[image]
    state, theirs_masks = _official_first_frame(theirs, data_dir / "images" / image, tmp_path, **prompt)
    if "box" in prompt:
        x1, y1, x2, y2 = prompt["box"]
        points, labels = [[x1, y1], [x2, y2]], [2, 3]
    else:
        points, labels = prompt["points"], prompt["labels"]
    ours_masks = _ours_first_frame(ours, state, points, labels)
    assert_parity(f"first_frame[{image}].mask_logits", ours_masks, theirs_masks, ATOL)
    inter = ((ours_masks > 0) & (theirs_masks > 0)).sum()
    union = ((ours_masks > 0) | (theirs_masks > 0)).sum()
    assert union > 0 and inter / union >= 0.99
    # Negative control: a click lost to the off-by-normalisation bug (pixels not rescaled).
    if "points" in prompt:
        wrong = _ours_first_frame(
            ours, state, [[x * ours.image_size / state["video_width"] for x in p] for p in points], labels
        )
        assert_differs(f"first_frame[{image}] unscaled clicks", wrong, theirs_masks, ATOL)


def _memory_scenario(theirs, ours, frame_idx=10, batch=2, seed=3):
    """A bank like the official one mid-video: cond frames 0 and 4, non-cond frames 5..9."""
    g = torch.Generator().manual_seed(seed)
    hw = ours.feat_size

    def entry():
        return {
            "maskmem_features": torch.randn(batch, 64, hw, hw, generator=g),
            "maskmem_pos_enc": [torch.randn(batch, 64, hw, hw, generator=g)],
            "obj_ptr": torch.randn(batch, 256, generator=g),
        }

    output_dict = {
        "cond_frame_outputs": {0: entry(), 4: entry()},
        "non_cond_frame_outputs": {t: entry() for t in range(5, frame_idx)},
    }
    curr = torch.randn(hw * hw, batch, 256, generator=g)
    curr_pos = torch.randn(hw * hw, batch, 256, generator=g)
    return output_dict, curr, curr_pos


def _ours_memory(ours, output_dict, curr, curr_pos, frame_idx, signed=True, tpos_shift=0):
    """Assemble memory by Meta's rules for this scenario with our building blocks."""
    hw = ours.feat_size
    mems, poss = [], []
    cond = output_dict["cond_frame_outputs"]
    non_cond = output_dict["non_cond_frame_outputs"]
    slots = [(0, cond[t]) for t in sorted(cond)]
    for t_pos in range(1, ours.num_maskmem):
        prev = non_cond.get(frame_idx - (ours.num_maskmem - t_pos))
        if prev is not None:
            slots.append((t_pos, prev))
    for t_pos, prev in slots:
        tok, pos = ours.memory_tokens(
            prev["maskmem_features"], prev["maskmem_pos_enc"][-1], min(t_pos + tpos_shift, ours.num_maskmem - 1)
        )
        mems.append(tok)
        poss.append(pos)
    ptrs = [(frame_idx - t, cond[t]["obj_ptr"]) for t in sorted(cond) if t <= frame_idx]
    ptrs += [(d, non_cond[frame_idx - d]["obj_ptr"]) for d in range(1, 16) if frame_idx - d in non_cond]
    t_diffs = torch.tensor([d if signed else abs(d) for d, _ in ptrs], dtype=torch.float32)
    if not signed:
        t_diffs = -t_diffs
    ptr_tok, ptr_pos = ours.obj_ptr_tokens(torch.stack([p for _, p in ptrs]), t_diffs, max_obj_ptrs=16)
    memory = torch.cat(mems + [ptr_tok])
    memory_pos = torch.cat(poss + [ptr_pos])
    b = curr.shape[1]
    feats = curr.permute(1, 2, 0).reshape(b, 256, hw, hw)
    pos = curr_pos.permute(1, 2, 0).reshape(b, 256, hw, hw)
    return ours.condition_on_memory(feats, pos, memory, memory_pos, num_obj_ptr_tokens=ptr_tok.shape[0])


def test_memory_conditioning_matches_official(pair):
    theirs, ours = pair
    frame_idx = 10
    output_dict, curr, curr_pos = _memory_scenario(theirs, ours, frame_idx)
    hw = ours.feat_size
    with torch.inference_mode():
        expected = theirs._prepare_memory_conditioned_features(
            frame_idx=frame_idx,
            is_init_cond_frame=False,
            current_vision_feats=[curr],
            current_vision_pos_embeds=[curr_pos],
            feat_sizes=[(hw, hw)],
            output_dict=output_dict,
            num_frames=100,
        )
        got = _ours_memory(ours, output_dict, curr, curr_pos, frame_idx)
        assert_parity("memory_conditioning[2 cond + 5 recent, 7 ptrs].pix_feat", got, expected, ATOL)
        # Negative controls: unsigned pointer distances (SAM 2.0 style), a shifted memory slot.
        assert_differs(
            "memory_conditioning unsigned tpos",
            _ours_memory(ours, output_dict, curr, curr_pos, frame_idx, signed=False),
            expected,
            ATOL,
        )
        assert_differs(
            "memory_conditioning shifted slot",
            _ours_memory(ours, output_dict, curr, curr_pos, frame_idx, tpos_shift=1),
            expected,
            ATOL,
        )


@pytest.mark.parametrize("from_points", [True, False])
def test_encode_memory_matches_official(pair, from_points):
    theirs, ours = pair
    g = torch.Generator().manual_seed(5)
    hw = ours.feat_size
    feats = torch.randn(3, 256, hw, hw, generator=g)
    masks = torch.randn(3, 1, SIZE, SIZE, generator=g) * 5
    scores = torch.tensor([[3.0], [-2.0], [0.5]])  # one absent object: no_obj_embed_spatial
    with torch.inference_mode():
        exp_f, exp_p = theirs._encode_new_memory(
            [feats.flatten(2).permute(2, 0, 1)], [(hw, hw)], masks, scores, is_mask_from_pts=from_points
        )
        got_f, got_p = ours.encode_memory(feats, masks, scores, is_mask_from_pts=from_points)
        tag = "points" if from_points else "mask"
        assert_parity(f"encode_memory[{tag}].features", got_f, exp_f, ATOL)
        assert_parity(f"encode_memory[{tag}].pos", got_p, exp_p[-1], ATOL)
        wrong_f, _ = ours.encode_memory(feats, masks, -scores, is_mask_from_pts=from_points)
        assert_differs(f"encode_memory[{tag}] flipped presence", wrong_f, exp_f, ATOL)


def test_mask_as_output_matches_official(pair):
    theirs, ours = pair
    g = torch.Generator().manual_seed(7)
    hw = ours.feat_size
    pix = torch.randn(2, 256, hw, hw, generator=g)
    high_res = [torch.randn(2, 32, 4 * hw, 4 * hw, generator=g), torch.randn(2, 64, 2 * hw, 2 * hw, generator=g)]
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[0, :, 100:300, 50:200] = 1  # second object: empty mask -> absent
    with torch.inference_mode():
        exp = theirs._use_mask_as_output(pix, high_res, mask)
        got = ours.mask_as_output(pix, high_res, mask)
    for name, a, b in zip(
        ["low_res_masks", "high_res_masks", "ious", "obj_ptr", "object_score_logits"],
        [got.low_res_masks, got.high_res_masks, got.ious, got.obj_ptr, got.object_score_logits],
        [exp[3], exp[4], exp[2], exp[5], exp[6]],
    ):
        assert_parity(f"mask_as_output.{name}", a, b, ATOL)
