"""EdgeTAM through the unchanged interfaces: the track CLI (as the node builds it), image mode, automatic masks.

Random weights at 256 px (EdgeTAM needs a multiple of 256), so these check plumbing and shapes,
not mask quality: the memory bank is sized from the model (512 latents x 64 per frame), objects
are batched and added mid-stream, and image mode / the automatic mask generator run on EdgeTAM's
features. Streaming parity with Meta's EdgeTAM is tests/test_edgetam_tracker_parity.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_ros.cli import main
from sam2_ros.image.generator import AutomaticMaskGenerator
from sam2_ros.image.predictor import SamImagePredictor
from sam2_ros.model import build_sam2
from sam2_ros.tracking import Sam2Tracker, TorchBackend

SIZE = 256


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_sam2("edgetam", image_size=SIZE).eval()


@pytest.fixture(scope="module")
def bedroom(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bedroom_et")
    for i in range(5):
        (folder / f"{i:05d}.jpg").symlink_to(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")
    return folder


def test_bank_is_sized_from_the_model(model):
    """512 latents x 64 per memory frame (not 64 x H x W), preallocated once and never grown."""
    tracker = Sam2Tracker(TorchBackend(model), max_objects=3, max_cond_frames=2)
    bank = tracker.bank
    assert bank.memory_shape == (512, 64)
    assert tuple(bank.recent_feats.shape) == (3, 6, 512, 64) and tuple(bank.cond_feats.shape) == (3, 2, 512, 64)
    before = (bank.nbytes(), [t.data_ptr() for t in bank.tensors()])
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for f in range(9):
        tracker.track(frame)
        if f == 0:
            tracker.add_points(1, [[40, 40]])
            tracker.add_box(2, [60, 20, 150, 110])
        if f == 4:  # mid-stream: a correction and a third object, all three tracked in one batch
            tracker.add_points(1, [[50, 60]], [0])
            tracker.add_points(3, [[100, 90]])
    assert tracker.object_ids == [1, 2, 3]
    assert (bank.nbytes(), [t.data_ptr() for t in bank.tensors()]) == before
    # Each object's memory frames are its own: object 3 has no memory before the frame it was added on.
    assert (bank.cond_frame[2] <= 4).all() and set(bank.recent_frame[2][bank.recent_frame[2] >= 0]) <= set(range(4, 9))


def test_track_cli_with_edgetam(bedroom: Path, tmp_path: Path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(
            [
                "track",
                str(bedroom),
                "--out",
                str(tmp_path),
                "--random-weights",
                "--model",
                "edgetam",
                "--image-size",
                str(SIZE),
                "--point",
                "1:400,200",
                "--box",
                "2:100,100,500,400",
                "--point",
                "3:600,300@2",
            ]
        )
    assert rc == 0, err.getvalue()
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    ids = [[o["id"] for o in f["objects"]] for f in summary["frames"]]
    assert ids[:2] == [[1, 2], [1, 2]] and ids[2:] == [[1, 2, 3]] * 3


def test_image_mode_and_automatic_masks(model, data_dir: Path):
    pil = pytest.importorskip("PIL.Image")
    image = np.asarray(pil.open(data_dir / "videos" / "bedroom" / "00000.jpg").convert("RGB"))
    predictor = SamImagePredictor(model)
    predictor.set_image(image)
    masks, scores, logits = predictor.predict(point_coords=np.array([[400.0, 200.0]]), point_labels=np.array([1]))
    assert masks.shape[1:] == image.shape[:2] and len(scores) == len(masks) == 3
    assert logits.shape[-2:] == (SIZE // 4, SIZE // 4)
    records = AutomaticMaskGenerator(
        model, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    ).generate(image)
    assert isinstance(records, list)
    for r in records:
        assert r["segmentation"].shape == image.shape[:2]


def test_node_core_tracks_with_edgetam():
    """The node's ROS-free core built the node's way (``model: edgetam`` parameters) tracks a tap:
    label image, detections and tracked objects for every frame, one object registered."""
    from sam2_ros.ros.node import params as P
    from sam2_ros.ros.node.core import TrackerCore, build_tracker
    from tests.test_ros_core import ListLogger, image, point

    params = P.TrackerParams.from_dict(
        {"model": "edgetam", "random_weights": True, "image_size": SIZE, "device": "cpu", "max_objects": 2}
    )
    tracker = build_tracker(params, node=True)
    assert tracker.bank.memory_shape == (512, 64)  # EdgeTAM's latents, sized from the model
    logger = ListLogger()
    core = TrackerCore(tracker, params, logger)
    core.on_image(image(0))
    core.on_point(point(20, 20))
    outputs = [core.step()]
    for i in range(1, 3):
        core.on_image(image(i))
        outputs.append(core.step())
    assert all(o is not None and o.label_image is not None for o in outputs)
    assert [len(o.tracked_objects.objects) for o in outputs] == [1, 1, 1]
    assert logger.text("error") == ""
