"""``sam2-ros segment``: outputs checked against the Python API, read back with Pillow/pycocotools.

The command runs in-process (``sam2_ros.cli.main``) with random weights at 128 px on two
downscaled real images of different sizes; the test rebuilds the same seeded model and
computes the expected masks with ``SamImagePredictor`` / ``AutomaticMaskGenerator``.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from sam2_ros.cli import main
from sam2_ros.image import AutomaticMaskGenerator, SamImagePredictor
from sam2_ros.model import build_sam2

SIZE = 128


def _read_image(path, mode: str | None = None) -> np.ndarray:
    """An image file read with Pillow (the test extra's; imported here so ROS machines collect tests without it)."""
    from PIL import Image

    image = Image.open(path)
    return np.asarray(image.convert(mode) if mode else image)


@pytest.fixture(scope="module")
def images(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    bgr = cv2.imread(str(data_dir / "images" / "groceries.jpg"))
    cv2.imwrite(str(folder / "img2.jpg"), cv2.resize(bgr, (200, 134), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(folder / "img10.png"), cv2.resize(bgr, (160, 120), interpolation=cv2.INTER_AREA))
    return folder


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)  # what the command does for --random-weights
    return build_sam2("sam2.1_hiera_t", None, image_size=SIZE).eval()


def _rgb(path):
    return _read_image(path, "RGB")


def _run(*argv) -> int:
    return main(["segment", *map(str, argv), "--random-weights", "--image-size", str(SIZE), "--device", "cpu"])


def test_prompted_labels_match_the_api(images, model, tmp_path):
    out = tmp_path / "out"
    assert (
        _run(
            images,
            "--point",
            "1:50,60",
            "--point",
            "1:70,60:0",
            "--box",
            "2:10,10,100,100",
            "--box",
            "3:90,50,150,110@1",
            "--multimask",
            "--out",
            out,
        )
        == 0
    )
    doc = json.loads((out / "results.json").read_text())
    assert [e["image"].rsplit("/", 1)[-1] for e in doc["images"]] == ["img2.jpg", "img10.png"]  # natural order
    predictor = SamImagePredictor(model)
    for index, name in enumerate(["img2", "img10"]):
        rgb = _rgb(images / f"{name}{'.jpg' if index == 0 else '.png'}")
        predictor.set_image(rgb)
        expected = {
            1: predictor.predict(np.array([[50.0, 60.0], [70.0, 60.0]]), np.array([1, 0]), return_logits=True),
            2: predictor.predict(box=np.array([10.0, 10.0, 100.0, 100.0]), return_logits=True),
        }
        if index == 1:  # @1: only the second image of the folder
            expected[3] = predictor.predict(box=np.array([90.0, 50.0, 150.0, 110.0]), return_logits=True)
        entry = doc["images"][index]
        assert [o["id"] for o in entry["objects"]] == sorted(expected)
        best = {}
        for obj in entry["objects"]:
            logits, ious, _ = expected[obj["id"]]
            k = int(np.argmax(ious))
            best[obj["id"]] = logits[k]
            assert [c["predicted_iou"] for c in obj["candidates"]] == [round(float(v), 4) for v in ious]
            for c, cand in zip(obj["candidates"], logits):
                written = _read_image(out / c["file"]) > 0
                assert np.array_equal(written, cand > 0)
            assert obj["predicted_iou"] == round(float(ious[k]), 4)
        ids = sorted(best)
        stack = np.stack([best[i] for i in ids])
        want = np.where((stack > 0).any(0), np.array(ids)[stack.argmax(0)], 0)
        labels = _read_image(out / "labels" / f"{name}.png")
        assert labels.shape == rgb.shape[:2] and np.array_equal(labels, want)
        assert _read_image(out / "overlays" / f"{name}.png").shape == rgb.shape


def test_auto_matches_the_generator(images, model, tmp_path):
    from pycocotools import mask as mask_utils

    out = tmp_path / "auto"
    settings = [
        "--points-per-side",
        "4",
        "--pred-iou-thresh",
        "0",
        "--stability-score-thresh",
        "0",
        "--box-nms-thresh",
        "0.95",
    ]
    assert _run(images / "img2.jpg", "--auto", *settings, "--out", out) == 0
    rgb = _rgb(images / "img2.jpg")
    records = AutomaticMaskGenerator(
        model, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.95
    ).generate(rgb)
    records = sorted(records, key=lambda r: r["area"], reverse=True)
    doc = json.loads((out / "results.json").read_text())
    objs = doc["images"][0]["objects"]
    assert len(objs) == len(records) >= 1
    labels = _read_image(out / "labels" / "img2.png")
    want = np.zeros(rgb.shape[:2], dtype=np.uint8)
    for obj, rec in zip(objs, records):
        seg = obj["segmentation"]
        mask = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)
        assert np.array_equal(mask, rec["segmentation"])
        assert obj["bbox"] == rec["bbox"] and obj["predicted_iou"] == rec["predicted_iou"]
        want[mask] = obj["id"]
    assert np.array_equal(labels, want)


def test_auto_option_defaults_are_the_generators():
    """``segment --auto``'s options restate the generator's defaults (the CLI parses without torch); they agree."""
    import argparse
    import inspect

    from sam2_ros.cli.segment import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    generator = inspect.signature(AutomaticMaskGenerator.__init__).parameters
    auto = [a for g in parser._action_groups if g.title and "--auto" in g.title for a in g._group_actions]
    checked = {a.dest for a in auto if a.dest != "auto"}
    assert checked == {
        "points_per_side",
        "points_per_batch",
        "pred_iou_thresh",
        "stability_score_thresh",
        "box_nms_thresh",
        "crop_n_layers",
        "min_mask_region_area",
    }
    for dest in checked:
        assert parser.get_default(dest) == generator[dest].default, dest


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--point", "1:500,60"], "outside the 200x134 image"),
        ([], "give prompts (--point/--box) or --auto"),
        (["--auto", "--point", "1:5,5"], "drop --point/--box"),
        (["--point", "1:5,5@3"], "prompts for images [3]"),
    ],
)
def test_errors_are_one_line(images, tmp_path, capsys, argv, message):
    assert _run(images / "img2.jpg", *argv, "--out", tmp_path / "x") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sam2-ros segment: error:") and message in err[-1]


def test_missing_input(tmp_path, capsys):
    assert _run(tmp_path / "nope.jpg", "--point", "1:5,5", "--out", tmp_path / "x") == 2
    assert "does not exist" in capsys.readouterr().err


def test_track_auto_tracks_first_frame_masks(images, tmp_path, monkeypatch):
    """``sam2-ros track --auto``: automatic masks on frame 0 become the tracked objects.

    Random weights fail Meta's default filters, so both sides use the same lowered ones.
    """
    import functools

    import sam2_ros.image as image_api
    from sam2_ros.factory import TrackerOptions, build_tracker
    from sam2_ros.io.sources import open_source

    lowered = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    monkeypatch.setattr(image_api, "prompt_everything", functools.partial(image_api.prompt_everything, **lowered))
    frames = tmp_path / "frames"
    frames.mkdir()
    bgr = cv2.imread(str(images / "img2.jpg"))
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), bgr)
    out = tmp_path / "track"
    assert (
        main(
            [
                "track",
                str(frames),
                "--auto",
                "--max-objects",
                "3",
                "--random-weights",
                "--image-size",
                str(SIZE),
                "--device",
                "cpu",
                "--no-overlay",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    tracker = build_tracker(TrackerOptions(random_weights=True, image_size=SIZE, device="cpu", max_objects=3)).tracker
    with open_source(str(frames)) as source:
        expected = []
        for index, frame in enumerate(source):
            result = tracker.track(frame)
            if index == 0:
                result = image_api.prompt_everything.func(tracker, frame, 3, **lowered)
            expected.append(result.label_image())
    summary = json.loads((out / "summary.json").read_text())
    assert [o["id"] for o in summary["frames"][1]["objects"]] == [1, 2, 3]
    for index, want in enumerate(expected):
        assert np.array_equal(_read_image(out / "masks" / f"{index:05d}.png"), want)
    assert main(["track", str(frames), "--auto", "--point", "1:5,5", "--random-weights", "--out", str(out)]) == 2
