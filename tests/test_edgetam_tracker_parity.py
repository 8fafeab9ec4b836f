"""Streaming tracker with EdgeTAM vs Meta's EdgeTAM video predictor, on the bedroom clip at 256 px.

Scenario, in streaming order (Meta: propagate to frame N, the prompt refines N, continue from N;
ours: ``track`` frame by frame, prompts on the current frame):

* frame 0: object 1 from a click, object 2 from a box;
* frame ``FIX``: a negative correction click on object 1, and object 3 added by a click;
* after frame ``DROP``: object 2 removed; tracking continues to the last frame.

Meta's EdgeTAM cannot batch objects and its video predictor refuses new ids once tracking
started, so the reference runs one predictor state per object (objects are independent with
non-overlapping masks off) in its own process (``tests/edgetam_reference_video.py``); ours tracks
all of them in one batched tracker with its fixed-size bank. Weights are the reference's seeded
random ones (object-score head biased so objects are present); hole filling is off on both sides
(Meta's needs its CUDA extension). Logits are compared per frame and object: relative L2 <= 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2_ros.model import build_sam2
from sam2_ros.tracking import Sam2Tracker, TorchBackend
from tests import edgetam_reference
from tests.parity import RECORDED

SIZE = 256
SEED = 3
REL_L2 = 1e-4
OBJ_SCORE_BIAS = 8.0
VIDEO_RUNNER = Path(__file__).with_name("edgetam_reference_video.py")

CLICK_1 = ([[300.0, 220.0]], [1])
BOX_2 = [560.0, 60.0, 820.0, 420.0]
CORRECTION_1 = ([[340.0, 300.0]], [0])
CLICK_3 = ([[150.0, 400.0]], [1])

#: (frames, correction/new-object frame, last frame of object 2): lean by default, longer when slow.
SCENARIOS = {"short": (8, 4, 6), "long": (16, 8, 12)}


def events(fix: int) -> list[dict]:
    return [
        {"frame": 0, "obj": 1, "points": CLICK_1[0], "labels": CLICK_1[1]},
        {"frame": 0, "obj": 2, "box": BOX_2},
        {"frame": fix, "obj": 1, "points": CORRECTION_1[0], "labels": CORRECTION_1[1]},
        {"frame": fix, "obj": 3, "points": CLICK_3[0], "labels": CLICK_3[1]},
    ]


@pytest.fixture(scope="module")
def frames_dir(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bedroom_edgetam")
    for i in range(max(n for n, _, _ in SCENARIOS.values())):
        (folder / f"{i:05d}.jpg").symlink_to(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")
    return folder


_CACHE: dict[str, tuple[dict, torch.nn.Module]] = {}


def reference_run(name: str, frames_dir: Path) -> tuple[dict, torch.nn.Module]:
    """The reference's output for a scenario (once per session) and our model with its weights."""
    if name not in _CACHE:
        n, fix, drop = SCENARIOS[name]
        folder = frames_dir.parent / f"{frames_dir.name}_{n}"
        if not folder.exists():
            folder.mkdir()
            for i in range(n):
                (folder / f"{i:05d}.jpg").symlink_to((frames_dir / f"{i:05d}.jpg").resolve())
        ref = edgetam_reference.run_reference(
            "edgetam_video",
            extra=[VIDEO_RUNNER],
            seed=SEED,
            image_size=SIZE,
            video=str(folder),
            num_frames=n,
            events=events(fix),
            last_frame={2: drop},
            obj_score_bias=OBJ_SCORE_BIAS,
        )
        ours = build_sam2("edgetam", image_size=SIZE, fill_hole_area=0)
        ours.load_state_dict(ref["state_dict"], strict=True)
        _CACHE[name] = (ref, ours.eval())
    return _CACHE[name]


def run_ours(
    backend, images: torch.Tensor, hw: tuple[int, int], name: str, prompt_1=CLICK_1
) -> tuple[dict, Sam2Tracker]:
    """Our batched tracker on the reference's normalised frames; {frame: {obj: logits}}."""
    n, fix, drop = SCENARIOS[name]
    tracker = Sam2Tracker(backend, max_objects=4, fill_hole_area=0)
    out = {}
    for f in range(n):
        result = tracker.track_image(images[f : f + 1].float(), hw)
        if f == 0:
            tracker.add_points(1, *prompt_1)
            result = tracker.add_box(2, BOX_2)
        elif f == fix:
            tracker.add_points(1, *CORRECTION_1)
            result = tracker.add_points(3, *CLICK_3)
        out[f] = {oid: result.logits[i].clone() for i, oid in enumerate(result.object_ids)}
        if f == drop:
            tracker.remove_object(2)
    return out, tracker


def worst_rel_l2(ours: dict, theirs: dict) -> tuple[float, tuple[int, int] | None]:
    worst, where = 0.0, None
    assert sorted(ours) == sorted(theirs)
    for f, objs in theirs.items():
        assert sorted(ours[f]) == sorted(objs), f"frame {f}: objects {sorted(ours[f])} vs {sorted(objs)}"
        for oid, exp in objs.items():
            exp = exp.double()
            rel = ((ours[f][oid].double() - exp).norm() / exp.norm()).item()
            if rel > worst:
                worst, where = rel, (f, oid)
    return worst, where


def check(name: str, frames_dir: Path) -> None:
    ref, ours = reference_run(name, frames_dir)
    images = ref["images"]
    hw = tuple(next(iter(ref["logits"][0].values())).shape)
    got, tracker = run_ours(TorchBackend(ours), images, hw, name)
    rel, where = worst_rel_l2(got, ref["logits"])
    n = SCENARIOS[name][0]
    RECORDED[f"edgetam tracker[bedroom {n}f @ {SIZE}].logits (rel L2 worst)"] = (rel, rel, REL_L2)
    assert rel <= REL_L2, f"logits differ by rel L2 {rel:.2e} at (frame, object) {where}"
    assert tracker.object_ids == [1, 3]
    # Objects are present (the comparison is not between two empty masks).
    assert all((t > 0).any() for objs in ref["logits"].values() for t in objs.values())


def test_edgetam_streaming_tracker_matches_reference(frames_dir):
    check("short", frames_dir)


@pytest.mark.slow
def test_edgetam_streaming_tracker_matches_reference_long(frames_dir):
    check("long", frames_dir)


def test_edgetam_parity_fails_for_wrong_variants(frames_dir):
    """Negative controls: the same comparison rejects another first click and memory without positions."""
    ref, ours = reference_run("short", frames_dir)
    hw = tuple(next(iter(ref["logits"][0].values())).shape)
    wrong_click, _ = run_ours(TorchBackend(ours), ref["images"], hw, "short", prompt_1=([[320.0, 240.0]], [1]))
    rel, _ = worst_rel_l2(wrong_click, ref["logits"])
    assert rel > REL_L2 * 10, f"a different first click changed logits by only {rel:.2e}"

    # Memory latents without their position encoding (the 2-D latents' sine grid dropped).
    backend = TorchBackend(ours)
    backend._mem_pos = torch.zeros_like(backend._mem_pos)
    wrong, _ = run_ours(backend, ref["images"], hw, "short")
    rel, _ = worst_rel_l2(wrong, ref["logits"])
    assert rel > REL_L2 * 10, f"dropping the memory position encoding changed logits by only {rel:.2e}"
