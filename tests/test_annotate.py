"""``sam2-ros annotate`` on a local Ray cluster (2 workers), against ``sam2-ros track`` on the same inputs.

One Ray session for the module (Ray starts slowly on 2 cores). One run annotates a video, an
image folder and a bag (prompted by its Detection2DArray topic), plus a corrupt video and an
unreadable bag that must fail alone. Its label PNGs must equal ``sam2-ros track`` (and the bag
replay, read back with ``mcap``) pixel for pixel; its COCO files must load with pycocotools and
decode to those label images; a rerun must skip what is finished. Random weights, 128-pixel
model input: the masks are meaningless, the plumbing is what is checked.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer

from sam2_ros.annotate.inputs import expand_inputs, input_kind, output_name
from sam2_ros.cli import main
from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.typesys import typestore

# Not a module-level importorskip: a collector that imports every test module (launch_testing's
# pytest plugin, loaded wherever ROS is sourced) would then skip the whole tests package.
try:
    import pycocotools.mask as pycoco_mask
    import ray
    from pycocotools.coco import COCO
except ImportError as exc:
    ray = pycoco_mask = COCO = None
    pytestmark = pytest.mark.skip(reason=f"needs the annotate extra (ray, pycocotools): {exc}")

REPO = Path(__file__).resolve().parents[1]
RANDOM_TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "128"]
FRAMES = 4  # --max-frames of every run
T0 = 1_700_000_000_000_000_000
STORE = typestore()

# The same prompts, as a prompt file entry and as `track` arguments.
BED_PROMPTS = {
    0: {
        1: {"points": [[400, 200], [450, 250]], "labels": [1, 0]},
        2: {"box": [100, 100, 500, 400], "points": [[300, 300]], "labels": [0]},
    },
    2: {3: {"points": [[600, 300]]}},
}
BED_ARGS = [
    "--point",
    "1:400,200",
    "--point",
    "1:450,250:0",
    "--box",
    "2:100,100,500,400",
    "--point",
    "2:300,300:0",
    "--point",
    "3:600,300@2",
]
ARM_PROMPTS = {0: {1: {"box": [100, 40, 220, 150]}}, 1: {2: {"points": [[40, 40]]}}}
ARM_ARGS = ["--box", "1:100,40,220,150", "--point", "2:40,40@1"]
# The bag's detections (image index, id, box) and the same boxes as replay arguments.
DETECTIONS = [(0, "1", (60.0, 20.0, 120.0, 80.0)), (2, "2", (10.0, 10.0, 50.0, 40.0))]
BAG_ARGS = ["--box", "1:60,20,120,80", "--box", "2:10,10,50,40@2"]
BAG_HW = (90, 160)


@contextlib.contextmanager
def worker_threads():
    """Run ``track`` with the workers' torch thread count (--cpus-per-worker 1).

    On CPU, float reductions split differently over more threads; the labels then differ in
    a pixel or so per frame (1 of 57600 in this clip), whatever the code path.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's own errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def stamp(i: int) -> int:
    return T0 + i * 100_000_000


def arm_frames(data_dir: Path, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(data_dir / "videos" / "16_robotarm.mp4"))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def write_bag(path: Path, frames: list[np.ndarray]) -> None:
    """An MCAP rosbag2 of bgr8 images plus a Detection2DArray topic (one message matches no image)."""
    image_t, dets_t = "sensor_msgs/msg/Image", "vision_msgs/msg/Detection2DArray"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection("/camera/image_raw", image_t, typestore=STORE)
        detections = writer.add_connection("/detector/detections", dets_t, typestore=STORE)
        for i, bgr in enumerate(frames):
            msg = STORE.types[image_t](
                header=m.header_msg(stamp(i), "camera"),
                height=bgr.shape[0],
                width=bgr.shape[1],
                encoding="bgr8",
                is_bigendian=0,
                step=bgr.shape[1] * 3,
                data=bgr.reshape(-1),
            )
            writer.write(images, stamp(i) + 5_000_000, bytes(STORE.serialize_cdr(msg, image_t)))
        for index, det_id, box in [*DETECTIONS, (9, "7", (1.0, 1.0, 9.0, 9.0))]:  # image 9 does not exist
            dets = m.detection_array_msg(
                m.header_msg(stamp(index), "camera"), [m.PublishedObject(int(det_id), int(det_id), 0.9, True, box)]
            )
            # Recorded after their image, as a detector's output is.
            writer.write(detections, stamp(index) + 30_000_000, bytes(STORE.serialize_cdr(dets, dets_t)))


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    video = root / "arm.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 180))
    for bgr in arm_frames(data_dir, 6, (320, 180)):
        writer.write(bgr)
    writer.release()
    bed = root / "bed"
    bed.mkdir()
    for i in range(FRAMES):
        (bed / f"{i:05d}.jpg").write_bytes((data_dir / "videos" / "bedroom" / f"{i:05d}.jpg").read_bytes())
    write_bag(root / "cam_bag", arm_frames(data_dir, 6, BAG_HW[::-1]))
    (root / "broken.mp4").write_bytes(b"\x00\x01 not a video " * 64)
    (root / "broken_bag").mkdir()
    (root / "broken_bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: [unterminated\n")
    prompts = root / "prompts.yaml"
    prompts.write_text(
        json.dumps({"bed": BED_PROMPTS, "arm.mp4": ARM_PROMPTS, "broken.mp4": {0: {1: {"points": [[5, 5]]}}}})
    )
    return {
        "video": video,
        "images": bed,
        "bag": root / "cam_bag",
        "broken": root / "broken.mp4",
        "broken_bag": root / "broken_bag",
        "prompts": prompts,
    }


def annotate_argv(inputs: dict[str, Path], out: Path) -> list:
    return [
        "annotate",
        inputs["video"],
        inputs["images"],
        inputs["bag"],
        inputs["broken"],
        inputs["broken_bag"],
        "--out",
        out,
        "--prompts",
        inputs["prompts"],
        "--detections-topic",
        "/detector/detections",
        *RANDOM_TINY,
        "--max-frames",
        FRAMES,
        "--num-workers",
        2,
        "--quiet",
    ]


@pytest.fixture(scope="module")
def dataset(ray_session, inputs, tmp_path_factory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("dataset")
    rc, stdout, err = run_cli(annotate_argv(inputs, out))
    assert rc == 1, err  # two inputs fail on purpose
    return out, stdout, err


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def entry(out: Path, path: Path) -> dict:
    return manifest(out)["inputs"][output_name(path.resolve())]


def decode_rle(rle: dict) -> np.ndarray:
    """COCO's compressed RLE string decoded by hand (maskApi.c rleFrString), independently of pycocotools."""
    text, counts, p = rle["counts"], [], 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        counts.append(x + counts[-2] if len(counts) > 2 else x)
    h, w = rle["size"]
    runs = np.repeat(np.arange(len(counts)) % 2 == 1, counts)  # zeros first, column-major
    assert runs.size == h * w
    return runs.reshape(w, h).T


def read_labels(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((folder / "masks").glob("*.png"))]


# ------------------------------------------------------------------------------------------- the run
def test_manifest_records_every_input(dataset, inputs):
    out, stdout, err = dataset
    doc = manifest(out)
    assert doc["totals"] == {
        "inputs": 5,
        "done": 3,
        "failed": 2,
        "frames": 3 * FRAMES,
        "annotations": doc["totals"]["annotations"],
    }
    assert doc["model"]["name"] == "sam2.1_hiera_t" and doc["model"]["sha256"] == "random"
    assert doc["last_run"]["num_workers"] == 2 and doc["last_run"]["engine"] == "ray"
    assert len({w["pid"] for w in doc["last_run"]["workers"]}) == 2
    for kind in ("video", "images", "bag"):
        e = entry(out, inputs[kind])
        assert e["status"] == "done" and e["kind"] == kind and e["frames"] == FRAMES, e
        assert e["stopped_by"] == "max frames" and len(e["sha256"]) == 64
        assert e["timings"]["track_s"] > 0 and e["timings"]["fps"] > 0
        assert (out / e["output"] / "annotations.json").is_file()
    assert entry(out, inputs["images"])["prompts"]["source"] == "file"
    assert entry(out, inputs["images"])["objects"] == 3
    bag = entry(out, inputs["bag"])
    assert bag["prompts"] == {
        "source": "detections",
        "topic": "/detector/detections",
        "detections": 3,
        "used": 2,
        "objects": [1, 2],
    }
    assert bag["warnings"] == ["1 detections matched no image stamp among the 4 images read"]
    assert "annotated 3 inputs (12 frames" in stdout and "0 skipped, 2 failed" in stdout


def test_failing_inputs_fail_alone(dataset, inputs):
    out, _, err = dataset
    broken = entry(out, inputs["broken"])
    assert broken["status"] == "failed" and "cannot open" in broken["error"] and str(inputs["broken"]) in err
    bad_bag = entry(out, inputs["broken_bag"])
    assert bad_bag["status"] == "failed" and bad_bag["error"], bad_bag
    # Nothing half-written: one folder per finished input, no partial folders.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", *(entry(out, inputs[k])["output"] for k in ("video", "images", "bag"))]
    )


def test_label_pngs_equal_track(dataset, inputs, tmp_path):
    out, _, _ = dataset
    for kind, prompts in (("video", ARM_ARGS), ("images", BED_ARGS)):
        with worker_threads():
            rc, _, err = run_cli(
                [
                    "track",
                    inputs[kind],
                    "--out",
                    tmp_path / kind,
                    *RANDOM_TINY,
                    "--max-frames",
                    FRAMES,
                    "--no-overlay",
                    *prompts,
                ]
            )
        assert rc == 0, err
        expected = read_labels(tmp_path / kind)
        got = read_labels(out / entry(out, inputs[kind])["output"])
        assert len(got) == len(expected) == FRAMES
        assert all(labels.any() for labels in got[2:])  # the comparison is not one of empty images
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    # The comparison can fail: object 3 prompted one frame later changes frame 2's labels.
    late = [a.replace("@2", "@3") for a in BED_ARGS]
    with worker_threads():
        rc, _, err = run_cli(
            [
                "track",
                inputs["images"],
                "--out",
                tmp_path / "late",
                *RANDOM_TINY,
                "--max-frames",
                3,
                "--no-overlay",
                *late,
            ]
        )
    assert rc == 0, err
    bed = read_labels(out / entry(out, inputs["images"])["output"])
    assert not np.array_equal(read_labels(tmp_path / "late")[2], bed[2])


def test_bag_labels_equal_the_replay(dataset, inputs, tmp_path):
    """Detections as prompts = the same boxes given to `track --bag`; its label_image topic read with mcap."""
    from mcap_ros2.reader import read_ros2_messages

    out, _, _ = dataset
    with worker_threads():
        rc, _, err = run_cli(
            [
                "track",
                "--bag",
                inputs["bag"],
                "--image-topic",
                "/camera/image_raw",
                "--out-bag",
                tmp_path / "replay.mcap",
                *RANDOM_TINY,
                "--max-frames",
                FRAMES,
                "--no-overlay",
                *BAG_ARGS,
            ]
        )
    assert rc == 0, err
    replayed = [
        np.frombuffer(bytes(msg.ros_msg.data), np.uint8).reshape(BAG_HW)
        for msg in read_ros2_messages(str(tmp_path / "replay.mcap"), topics=["/tracker/label_image"])
    ]
    got = read_labels(out / entry(out, inputs["bag"])["output"])
    assert len(got) == len(replayed) == FRAMES and set(np.unique(got[3]).tolist()) <= {0, 1, 2}
    assert got[0].any() and got[3].any()
    for a, b in zip(got, replayed):
        np.testing.assert_array_equal(a, b)


def test_coco_decodes_to_the_label_pngs(dataset, inputs):
    out, _, _ = dataset
    for kind in ("video", "images", "bag"):
        folder = out / entry(out, inputs[kind])["output"]
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(folder / "annotations.json"))
        labels = read_labels(folder)
        assert sorted(coco.getImgIds()) == list(range(1, FRAMES + 1))
        assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "object", "supercategory": "object"}]
        for index, label in enumerate(labels):
            image = coco.loadImgs(index + 1)[0]
            assert (image["height"], image["width"], image["frame_index"]) == (*label.shape, index)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=index + 1))
            assert sorted(a["object_id"] for a in anns) == sorted(set(np.unique(label).tolist()) - {0})
            for ann in anns:
                mask = coco.annToMask(ann).astype(bool)
                np.testing.assert_array_equal(mask, label == ann["object_id"])
                np.testing.assert_array_equal(decode_rle(ann["segmentation"]), mask)
                assert ann["area"] == int(mask.sum()) and 0 <= ann["score"] <= 1
                x, y, w, h = ann["bbox"]
                ys, xs = np.nonzero(mask)
                assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        if kind == "bag":
            assert [coco.loadImgs(i + 1)[0]["stamp_ns"] for i in range(FRAMES)] == [stamp(i) for i in range(FRAMES)]


def test_rerun_skips_finished_inputs(dataset, inputs):
    out, _, _ = dataset
    before = manifest(out)
    pngs = {p: p.stat().st_mtime_ns for p in out.glob("*/masks/*.png")}
    rc, stdout, err = run_cli(annotate_argv(inputs, out))
    assert rc == 1 and "5 inputs, 3 already done, 2 to do" in err, err
    after = manifest(out)
    for kind in ("video", "images", "bag"):  # untouched: same entry, same files
        name = output_name(inputs[kind].resolve())
        assert after["inputs"][name] == before["inputs"][name]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/masks/*.png")} == pngs
    assert after["last_run"]["skipped"] == 3 and after["last_run"]["failed"] == 2


# ------------------------------------------------------------------------------ without Ray's cluster
def test_inputs_from_globs_and_list_files(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("cam10.mp4", "cam2.mp4"):
        (tmp_path / "a" / name).write_bytes(b"x")
    (tmp_path / "frames").mkdir()
    (tmp_path / "run.mcap").write_bytes(b"x")
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "metadata.yaml").write_text("x")
    listing = tmp_path / "list.txt"
    listing.write_text("# recordings\nframes\n\nbag  # a rosbag2 folder\na/*.mp4\n")
    specs = expand_inputs([str(tmp_path / "run.mcap"), f"@{listing}", str(tmp_path / "a" / "cam2.mp4")])
    assert [(s.path.relative_to(tmp_path).as_posix(), s.kind) for s in specs] == [
        ("run.mcap", "bag"),
        ("frames", "images"),
        ("bag", "bag"),
        ("a/cam2.mp4", "video"),
        ("a/cam10.mp4", "video"),
    ]
    assert len({s.name for s in specs}) == 5 and specs[0].name.startswith("run-")
    assert output_name(tmp_path / "run.mcap") == specs[0].name  # stable: resuming depends on it
    assert input_kind(tmp_path / "a" / "cam2.mp4") == "video"
    for bad, message in (
        ([str(tmp_path / "nope.mp4")], "does not exist"),
        ([str(tmp_path / "*.avi")], "matches nothing"),
        ([f"@{tmp_path / 'missing.txt'}"], "does not exist"),
    ):
        with pytest.raises(FileNotFoundError, match=message):
            expand_inputs(bad)


@pytest.mark.parametrize(
    "prompts, extra, message",
    [
        ({"bed": {0: {300: {"points": [[1, 2]]}}}}, [], "object id 300 is outside 1..255"),
        ({"bed": {-1: {1: {"points": [[1, 2]]}}}}, [], "frame -1 must be >= 0"),
        ({"bed": {0: {1: {"box": [5, 5, 1, 1]}}}}, [], "need x1 < x2 and y1 < y2"),
        ({"bed": {0: {1: {"points": [[1, 2]], "labels": [2]}}}}, [], "labels: expected one 1 (object) or 0"),
        ({"nothing": {0: {1: {"points": [[1, 2]]}}}}, [], "'nothing' names none of the inputs"),
        ({"bed": {0: {1: {"points": [[1, 2]]}}}}, ["--auto-arg", "points_per_side=4"], "--auto-arg configures --auto"),
        ({"bed": {0: {1: {"points": [[1, 2]]}}}}, ["--auto", "--auto-arg", "nope=1"], "nope: not a keyword"),
        ({"bed": {0: {1: {"points": [[1, 2]]}}}}, ["--num-workers", "0"], "must be >= 1"),
    ],
)
def test_command_line_errors_are_one_line(inputs, tmp_path, prompts, extra, message):
    prompt_file = tmp_path / "p.yaml"
    prompt_file.write_text(json.dumps(prompts))
    rc, _, err = run_cli(
        ["annotate", inputs["images"], "--out", tmp_path / "ds", "--prompts", prompt_file, *RANDOM_TINY, *extra]
    )
    assert rc == 2 and message in err, err
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_inputs_without_prompts_are_refused(inputs, tmp_path):
    rc, _, err = run_cli(["annotate", inputs["images"], inputs["video"], "--out", tmp_path, *RANDOM_TINY])
    assert rc == 2 and err.count("\n") == 1 and "no prompts for" in err and "--auto" in err, err


def test_missing_ray_is_a_one_line_error(inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    rc, _, err = run_cli(
        ["annotate", inputs["images"], "--out", tmp_path, "--prompts", inputs["prompts"], *RANDOM_TINY]
    )
    assert rc == 2 and err.count("\n") == 1 and "pip install 'sam2_ros[annotate]'" in err, err


def test_track_and_the_node_core_never_import_ray(data_dir, tmp_path):
    code = f"""
import sys
from sam2_ros.cli import main
import sam2_ros.ros.node.core, sam2_ros.ros.bags.replay
rc = main(["track", {str(data_dir / "videos" / "bedroom")!r}, "--out", {str(tmp_path)!r}, "--random-weights",
           "--image-size", "64", "--max-frames", "1", "--no-overlay", "--point", "1:10,10"])
assert rc == 0
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
assert not loaded, loaded
print("ok")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


# ---------------------------------------------------------------------- in-process worker (no Ray)
AUTO_ARGS = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}


@pytest.fixture(scope="module")
def annotator(tmp_path_factory):
    from sam2_ros.annotate.worker import AnnotateSettings, Annotator
    from sam2_ros.factory import TrackerOptions

    opts = TrackerOptions(random_weights=True, image_size=128, max_objects=3)
    out = tmp_path_factory.mktemp("local_dataset")
    with contextlib.redirect_stderr(io.StringIO()):
        return Annotator(AnnotateSettings(opts, out, max_frames=3, auto_args=AUTO_ARGS))


def job_for(path: Path, source: str):
    from sam2_ros.annotate.inputs import expand_inputs, fingerprint
    from sam2_ros.annotate.worker import InputJob

    spec = expand_inputs([str(path)])[0]
    return InputJob(spec, fingerprint(spec.path, spec.kind), "key", source)


def test_auto_masks_seed_the_tracker_on_the_first_frame(annotator, inputs):
    """--auto = the image module's generator records as mask prompts on frame 0, tracked like any object."""
    from sam2_ros.factory import build_tracker
    from sam2_ros.image import AutomaticMaskGenerator, prompt_tracker_with_records, select_records
    from sam2_ros.io.sources import open_source

    e = annotator.annotate(job_for(inputs["images"], "auto"))
    assert e["status"] == "done", e
    assert e["prompts"]["source"] == "auto" and e["prompts"]["found"] > 3 and e["objects"] == 3
    assert [o["object_id"] for o in e["prompts"]["objects"]] == [1, 2, 3]
    assert e["warnings"] == [
        f"{e['prompts']['found']} automatic masks on the first frame; kept the 3 rated best (--max-objects)"
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        tracker = build_tracker(annotator.settings.tracker).tracker
    generator = AutomaticMaskGenerator(tracker.backend.model, **AUTO_ARGS)
    expected = []
    with open_source(str(inputs["images"])) as source:
        for index, frame in zip(range(3), source):
            result = tracker.track(frame)
            if index == 0:
                result = prompt_tracker_with_records(tracker, select_records(generator.generate(frame), 3))
            expected.append(result.label_image())
    got = read_labels(annotator.settings.out / e["output"])
    assert len(got) == 3 and got[0].any()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_an_interrupted_input_leaves_no_output_folder(annotator, inputs, monkeypatch):
    """Ctrl+C mid-input: nothing under the input's name; the partial folder is what the driver removes."""
    from sam2_ros.annotate.worker import remove_partials

    spec_job = job_for(inputs["video"], "auto")
    out = annotator.settings.out
    shutil.rmtree(out / spec_job.spec.name, ignore_errors=True)  # the module's annotator may have finished it before
    monkeypatch.setattr("sam2_ros.annotate.worker.REPORT_PERIOD_S", 0.0)  # report every frame: stop mid-input
    calls = []

    def interrupt(frames: int, total: int) -> None:
        calls.append(frames)
        if sum(calls) >= 2:
            raise KeyboardInterrupt

    annotator.progress.report, annotator.progress.last = interrupt, 0.0
    try:
        with pytest.raises(KeyboardInterrupt):
            annotator.annotate(spec_job)
    finally:
        annotator.progress.report = None
    assert not (out / spec_job.spec.name).exists()
    partial = [p for p in out.iterdir() if p.name.startswith(".partial-")]
    assert len(partial) == 1 and list((partial[0] / "masks").glob("*.png"))
    assert remove_partials(out) == 1 and not any(p.name.startswith(".") for p in out.iterdir())


@pytest.mark.slow
def test_ctrl_c_keeps_finished_inputs_and_nothing_else(data_dir, tmp_path):
    """SIGINT to the command while its second input runs: exit 130, the first input and its manifest only."""
    import signal
    import time

    folders = {"short": 2, "long": 60}
    for name, count in folders.items():
        (tmp_path / name).mkdir()
        for i in range(count):
            (tmp_path / name / f"{i:05d}.jpg").symlink_to(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")
    prompt_file = tmp_path / "prompts.json"
    prompt_file.write_text(json.dumps({name: {0: {1: {"points": [[400, 200]]}}} for name in folders}))
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sam2_ros",
            "annotate",
            tmp_path / "short",
            tmp_path / "long",
            "--out",
            out,
            "--prompts",
            prompt_file,
            *RANDOM_TINY,
            "--quiet",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    short = output_name((tmp_path / "short").resolve())
    deadline = time.monotonic() + 600
    while not (out / short).is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    partial_seen = False
    for _ in range(20):  # until the long input is being written
        partial_seen = any(p.name.startswith(".partial-long") for p in out.iterdir())
        if partial_seen:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert partial_seen and proc.returncode == 130, stderr[-2000:]
    assert "interrupted: finished inputs are in" in stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.json", short])
    doc = manifest(out)
    assert list(doc["inputs"]) == [short] and doc["inputs"][short]["status"] == "done"
    assert doc["last_run"]["stopped_by"] == "interrupted"


@pytest.mark.slow
def test_touched_but_unchanged_input_is_hashed_not_redone(dataset, inputs):
    """A new modification time makes the driver hand the input out; its SHA-256 is unchanged, so nothing is redone."""
    out, _, _ = dataset
    name = output_name(inputs["images"].resolve())
    before = manifest(out)["inputs"][name]
    pngs = {p: p.stat().st_mtime_ns for p in (out / name / "masks").glob("*.png")}
    first = sorted(inputs["images"].iterdir())[0]
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    rc, _, err = run_cli(annotate_argv(inputs, out))
    assert rc == 1 and "5 inputs, 2 already done, 3 to do" in err, err
    after = manifest(out)["inputs"][name]
    assert after["fingerprint"] != before["fingerprint"]
    assert {k: v for k, v in after.items() if k != "fingerprint"} == {
        k: v for k, v in before.items() if k != "fingerprint"
    }
    assert {p: p.stat().st_mtime_ns for p in (out / name / "masks").glob("*.png")} == pngs
