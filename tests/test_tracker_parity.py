"""Streaming tracker vs Meta's ``SAM2VideoPredictor`` on the bedroom demo clip.

Scenario, in streaming order (Meta: propagate to frame N, add the prompt at N, continue
from N; ours: ``track`` frame by frame, prompts on the current frame):

* frame 0: object 1 from a click, object 2 from a box;
* frame 10: a negative correction click on object 1, and object 3 added by a click;
* after frame 20: object 2 removed; tracking continues to frame 34.

Weights are random (no pretrained weights here), scaled and with the object-score head
biased so objects are present and masks non-empty. With random weights binary masks
barely depend on the prompt after a few frames, so logits are compared too: relative
L2 <= 1e-4 per frame and object, and mask IoU >= 0.99. Hole filling is off on both sides
(Meta's needs its CUDA extension and is skipped on CPU).
"""

from __future__ import annotations

import pytest
import torch

from sam2_ros.tracking import Sam2Tracker, TorchBackend
from tests.official_model import make_pair
from tests.parity import RECORDED, official

SIZE = 256  # reduced image size keeps both predictors fast on a 2-core CPU
NUM_FRAMES = 35
REL_L2 = 1e-4
IOU = 0.99

CLICK_1 = ([[300.0, 220.0]], [1])
BOX_2 = [560.0, 60.0, 820.0, 420.0]
CORRECTION_1 = ([[340.0, 300.0]], [0])
CLICK_3 = ([[150.0, 400.0]], [1])


@pytest.fixture(scope="module")
def video(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bedroom")
    for i in range(NUM_FRAMES):
        (folder / f"{i:05d}.jpg").symlink_to(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")
    return folder


def run_official(theirs, video, corrections_as_cond: bool):
    """Meta's predictor driven in streaming order; returns {frame: {obj_id: logits}}."""
    theirs.add_all_frames_to_correct_as_cond = corrections_as_cond
    state = theirs.init_state(str(video))
    out: dict[int, dict[int, torch.Tensor]] = {}

    def collect(frames):
        for f, ids, masks in frames:
            out[f] = {oid: masks[i, 0].clone() for i, oid in enumerate(ids)}

    with torch.inference_mode():
        theirs.add_new_points_or_box(state, 0, 1, points=CLICK_1[0], labels=CLICK_1[1])
        theirs.add_new_points_or_box(state, 0, 2, box=BOX_2)
        collect(theirs.propagate_in_video(state, start_frame_idx=0, max_frame_num_to_track=10))
        _, ids_1, masks_1 = theirs.add_new_points_or_box(state, 10, 1, points=CORRECTION_1[0], labels=CORRECTION_1[1])
        _, ids, masks = theirs.add_new_points_or_box(state, 10, 3, points=CLICK_3[0], labels=CLICK_3[1])
        if corrections_as_cond:
            collect(theirs.propagate_in_video(state, start_frame_idx=10, max_frame_num_to_track=10))
        else:
            # Meta re-runs a non-conditioning frame without its prompts when propagation
            # restarts there, and the masks returned for object 3's click show object 1's
            # pre-correction output (a not-yet-consolidated correction is not looked up);
            # the streaming equivalent takes each object's latest output on frame 10 and
            # continues from frame 11.
            collect([(10, ids, masks)])
            out[10][1] = masks_1[ids_1.index(1), 0].clone()
            collect(theirs.propagate_in_video(state, start_frame_idx=11, max_frame_num_to_track=9))
        theirs.remove_object(state, 2)
        collect(theirs.propagate_in_video(state, start_frame_idx=21, max_frame_num_to_track=NUM_FRAMES))
    return out, state


def run_ours(ours, state, corrections_as_cond: bool, prompt_1=CLICK_1):
    """Our tracker on the same normalised frames; returns {frame: {obj_id: logits}}."""
    tracker = Sam2Tracker(TorchBackend(ours), max_objects=4, corrections_as_cond=corrections_as_cond, fill_hole_area=0)
    hw = (state["video_height"], state["video_width"])
    out = {}
    for f in range(NUM_FRAMES):
        result = tracker.track_image(state["images"][f : f + 1].float(), hw)
        if f == 0:
            tracker.add_points(1, *prompt_1)
            result = tracker.add_box(2, BOX_2)
        elif f == 10:
            tracker.add_points(1, *CORRECTION_1)
            result = tracker.add_points(3, *CLICK_3)
        out[f] = {oid: result.logits[i].clone() for i, oid in enumerate(result.object_ids)}
        if f == 20:
            tracker.remove_object(2)
    return out, tracker


def compare(ours, theirs):
    """Worst relative L2 of logits and worst mask IoU over all frames and objects."""
    worst_rel, worst_iou, where = 0.0, 1.0, None
    assert sorted(ours) == sorted(theirs)
    for f in theirs:
        assert sorted(ours[f]) == sorted(theirs[f]), f"frame {f}: objects {sorted(ours[f])} vs {sorted(theirs[f])}"
        for oid, exp in theirs[f].items():
            got = ours[f][oid]
            rel = ((got - exp).norm() / exp.norm()).item()
            a, b = got > 0, exp > 0
            union = (a | b).sum().item()
            iou = (a & b).sum().item() / union if union else 1.0
            if rel > worst_rel:
                worst_rel, where = rel, (f, oid)
            worst_iou = min(worst_iou, iou)
    return worst_rel, worst_iou, where


@pytest.fixture(scope="module")
def pair():
    official()
    torch.manual_seed(0)
    return make_pair("sam2.1_hiera_t", SIZE, seed=2, std=0.05)


@pytest.mark.parametrize("corrections_as_cond", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_streaming_tracker_matches_official_video_predictor(pair, video, corrections_as_cond):
    theirs, ours = pair
    expected, state = run_official(theirs, video, corrections_as_cond)
    got, tracker = run_ours(ours, state, corrections_as_cond)
    rel, iou, where = compare(got, expected)
    RECORDED[f"tracker[bedroom {NUM_FRAMES}f, cond={corrections_as_cond}].logits (rel L2 worst)"] = (rel, rel, REL_L2)
    assert rel <= REL_L2, f"logits differ by rel L2 {rel:.2e} at (frame, object) {where}"
    assert iou >= IOU, f"mask IoU {iou:.4f} < {IOU}"
    assert tracker.object_ids == [1, 3]


def test_parity_fails_for_a_wrong_prompt(pair, video):
    """Negative control: the same comparison must reject a tracker given another first click."""
    theirs, ours = pair
    expected, state = run_official(theirs, video, True)
    wrong, _ = run_ours(ours, state, True, prompt_1=([[320.0, 240.0]], [1]))
    rel, _, _ = compare(wrong, expected)
    assert rel > REL_L2 * 10, f"a different first click changed logits by only {rel:.2e}"
