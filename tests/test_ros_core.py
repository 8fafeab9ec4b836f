"""The ROS node's core and the bag replay, without ROS: real CDR messages, real bags, a real (random) model.

Every message handed to the core went through CDR first, as in the node (which subscribes raw)
and in a bag. A recording tracker shows which frame each prompt reached. The replay runs on a
bag built from ../shared/data/videos/16_robotarm.mp4 and must agree pixel for pixel with
``sam2-ros track`` on the same frames: one tracker code path for the CLI, the replay and the node.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from sam2_ros.cli import main
from sam2_ros.model import build_sam2
from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.image_codec import image_to_rgb
from sam2_ros.ros.interfaces.typesys import ADD_OBJECTS_REQUEST, OBJECT_PROMPT, REMOVE_OBJECT_REQUEST, typestore
from sam2_ros.ros.node import params as P
from sam2_ros.ros.node.core import COMMAND_QUEUE_LIMIT, TrackerCore, label_image
from sam2_ros.tracking import Sam2Tracker, TorchBackend, TrackResult
from sam2_ros.utils.latest import LatestFrameSlot

REPO = Path(__file__).resolve().parents[1]
STORE = typestore()
TYPES = STORE.types
HW = (48, 64)
T0 = 1_700_000_000_000_000_000
RANDOM_TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "128"]


def roundtrip(msg):
    return STORE.deserialize_cdr(STORE.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def stamp(i: int) -> int:
    return T0 + i * 100_000_000


def header(i: int, frame_id: str = "camera_optical"):
    return m.header_msg(stamp(i), frame_id)


def pixels(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.integers(0, 255, (*HW, 3), dtype=np.uint8)


def image(i: int, encoding: str = "rgb8", data: np.ndarray | None = None):
    data = pixels(i) if data is None else data
    return roundtrip(
        TYPES["sensor_msgs/msg/Image"](
            header=header(i),
            height=data.shape[0],
            width=data.shape[1],
            encoding=encoding,
            is_bigendian=0,
            step=data.shape[1] * (data.shape[2] if data.ndim == 3 else 1) * data.itemsize,
            data=data.reshape(-1).view(np.uint8),
        )
    )


def point(x: float, y: float):
    return roundtrip(TYPES["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0))


def point_stamped(x: float, y: float, ns: int):
    return roundtrip(
        TYPES["geometry_msgs/msg/PointStamped"](header=m.header_msg(ns, "camera_optical"), point=point(x, y))
    )


def point2d(x: float, y: float):
    return TYPES["vision_msgs/msg/Point2D"](x=float(x), y=float(y))


def add_objects(box_ids=(), boxes=(), point_ids=(), points=(), labels=(), ns: int = 0):
    return roundtrip(
        TYPES[ADD_OBJECTS_REQUEST](
            request_header=m.header_msg(ns, ""),
            bbox_object_ids=list(box_ids),
            bbox_coords=[m.bbox2d(b) for b in boxes],
            point_object_ids=list(point_ids),
            point_coords=[point2d(*p) for p in points],
            point_labels=np.array(labels, dtype=np.int32),
        )
    )


def remove_object(obj_id: str):
    return roundtrip(TYPES[REMOVE_OBJECT_REQUEST](request_header=m.header_msg(0, ""), object_id=obj_id))


class ListLogger:
    """Collects (level, message) pairs instead of printing them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))

    def text(self, level: str) -> str:
        return "\n".join(msg for lvl, msg in self.lines if lvl == level)


class RecordingTracker(Sam2Tracker):
    """A real tracker that records each call with the index of the frame it acted on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple] = []

    def track(self, frame):
        result = super().track(frame)
        self.calls.append(("track", self.frame_index))
        return result

    def add_points(self, obj_id, points, labels=None, clear_old_points=False):
        self.calls.append(("points", self.frame_index, obj_id, [tuple(p) for p in points], list(labels or [])))
        return super().add_points(obj_id, points, labels, clear_old_points)

    def add_box(self, obj_id, box, points=None, labels=None):
        self.calls.append(("box", self.frame_index, obj_id, tuple(box), [tuple(p) for p in points or []]))
        return super().add_box(obj_id, box, points, labels)

    def remove_object(self, obj_id):
        self.calls.append(("remove", self.frame_index, obj_id))
        super().remove_object(obj_id)

    def reset(self):
        self.calls.append(("reset",))
        super().reset()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=128)


def make_core(model, clock=time.monotonic, **overrides) -> tuple[TrackerCore, RecordingTracker, ListLogger]:
    params = P.TrackerParams.from_dict({"max_objects": 4, **overrides})
    tracker = RecordingTracker(TorchBackend(model), max_objects=params.max_objects)
    logger = ListLogger()
    return TrackerCore(tracker, params, logger, clock), tracker, logger


def feed(core: TrackerCore, i: int, **step_kw):
    core.on_image(image(i))
    return core.step(**step_kw)


# ------------------------------------------------------------------ prompts reach the right frame
def test_tap_stamped_with_the_tracked_frame_lands_on_it(model):
    core, tracker, log = make_core(model)
    assert feed(core, 0) is not None
    core.on_point_stamped(point_stamped(10, 12, stamp(0)))
    out = feed(core, 1)
    assert tracker.calls == [("track", 0), ("points", 0, 1, [(10.0, 12.0)], [1]), ("track", 1)]
    assert [o.obj_id for o in out.objects] == [1] and m.stamp_ns(out.header) == stamp(1)
    assert log.lines == []


def test_tap_on_an_older_frame_is_retargeted_to_the_current_one(model):
    core, tracker, log = make_core(model)
    feed(core, 0)
    feed(core, 1)
    core.on_point_stamped(point_stamped(10, 12, stamp(0)))
    assert core.step() is None  # no new frame: the tap goes to frame 1 at once
    assert tracker.calls[-1] == ("points", 1, 1, [(10.0, 12.0)], [1])
    assert "re-targeted to the current frame" in log.text("info")
    assert [o.obj_id for o in feed(core, 2).objects] == [1]


def test_tap_on_a_frame_not_yet_tracked_waits_for_it(model):
    core, tracker, log = make_core(model)
    feed(core, 0)
    core.on_image(image(1))
    core.on_point_stamped(point_stamped(30, 20, stamp(1)))  # the viewer showed frame 1 before the tracker
    out = core.step()
    assert tracker.calls == [("track", 0), ("track", 1), ("points", 1, 1, [(30.0, 20.0)], [1])]
    assert m.stamp_ns(out.header) == stamp(1) and [o.obj_id for o in out.objects] == [1]
    assert log.lines == []


def test_unstamped_click_goes_to_the_frame_on_screen(model):
    core, tracker, _ = make_core(model)
    feed(core, 0)
    feed(core, 1)
    core.on_point(point(5, 6))
    out = feed(core, 2)
    assert tracker.calls[2:] == [("points", 1, 1, [(5.0, 6.0)], [1]), ("track", 2)]
    assert [o.obj_id for o in out.objects] == [1]


def test_prompt_before_the_first_frame_waits_for_it(model):
    core, tracker, _ = make_core(model)
    core.on_point(point(5, 6))
    assert core.step() is None and tracker.calls == []
    out = feed(core, 0)
    assert tracker.calls == [("track", 0), ("points", 0, 1, [(5.0, 6.0)], [1])]
    assert [o.obj_id for o in out.objects] == [1]


def test_tap_modes_replace_and_add(model):
    core, tracker, _ = make_core(model)
    feed(core, 0)
    core.on_point(point(5, 6))
    core.on_point(point(40, 30))
    out = feed(core, 1)
    assert tracker.calls[1:4] == [
        ("points", 0, 1, [(5.0, 6.0)], [1]),
        ("remove", 0, 1),
        ("points", 0, 1, [(40.0, 30.0)], [1]),
    ]
    assert [(o.obj_id, o.label) for o in out.objects] == [(1, 1)]

    core.set_param("tap_mode", "add")  # runtime parameter
    core.on_point(point(20, 20))
    core.on_point_stamped(point_stamped(50, 40, 0))  # zero stamp: the frame on screen
    out = feed(core, 2)
    assert [(o.obj_id, o.label) for o in out.objects] == [(1, 1), (2, 2), (3, 3)]
    with pytest.raises(ValueError, match="read-only"):
        core.set_param("model", "sam2.1_hiera_s")
    with pytest.raises(ValueError, match="must be one of replace, add"):
        core.set_param("tap_mode", "append")


def test_detections_seed_boxes_on_their_frame(model):
    core, tracker, _ = make_core(model)
    feed(core, 0)
    core.on_image(image(1))
    dets = m.detection_array_msg(
        header(1),
        [
            m.PublishedObject(7, 1, 0.9, True, (10.0, 5.0, 30.0, 25.0)),
            m.PublishedObject(0, 2, 0.8, True, (50.0, 30.0, 80.0, 60.0)),
        ],
    )
    dets.detections[1].id = ""  # a detector's own (non-decimal) id: a new object
    core.on_detections(roundtrip(dets))
    out = core.step()
    # Detector boxes may overhang the image: clipped to it, not refused.
    assert tracker.calls[1:] == [
        ("track", 1),
        ("box", 1, 7, (10.0, 5.0, 30.0, 25.0), []),
        ("box", 1, 8, (50.0, 30.0, 64.0, 48.0), []),
    ]
    assert [o.obj_id for o in out.objects] == [7, 8]


def test_object_prompt_with_points_labels_and_box(model):
    core, tracker, _ = make_core(model)
    feed(core, 0)
    msg = roundtrip(
        TYPES[OBJECT_PROMPT](
            header=m.header_msg(0, ""),
            object_id=-1,
            points=[point2d(12, 14), point2d(20, 22)],
            labels=np.array([1, 0], dtype=np.int32),
            box=[m.bbox2d((8, 8, 40, 40))],
        )
    )
    core.on_prompt(msg)
    refine = roundtrip(
        TYPES[OBJECT_PROMPT](
            header=m.header_msg(stamp(0), ""),
            object_id=1,
            points=[point2d(30, 30)],
            labels=np.array([0], dtype=np.int32),
            box=[],
        )
    )
    core.on_prompt(refine)
    feed(core, 1)
    assert tracker.calls[1:] == [
        ("box", 0, 1, (8.0, 8.0, 40.0, 40.0), [(12.0, 14.0), (20.0, 22.0)]),
        ("points", 0, 1, [(30.0, 30.0)], [0]),
        ("track", 1),
    ]


def test_add_and_remove_objects_services(model):
    core, tracker, _ = make_core(model)
    feed(core, 0)
    reply = roundtrip(
        core.add_objects(add_objects(["3"], [(8, 8, 40, 40)], ["1", "1"], [(10, 10), (30, 30)], [1, 0], ns=stamp(0)))
    )
    assert reply.success, reply.message
    # Labels go to objects in the order the request names them: its boxes first.
    assert (list(reply.object_ids), reply.object_indices.tolist()) == (["1", "3"], [2, 1])
    out = feed(core, 1)
    assert tracker.calls[1:3] == [
        ("box", 0, 3, (8.0, 8.0, 40.0, 40.0), []),
        ("points", 0, 1, [(10.0, 10.0), (30.0, 30.0)], [1, 0]),
    ]
    assert [(o.obj_id, o.label) for o in out.objects] == [(3, 1), (1, 2)]

    reply = roundtrip(core.remove_object(remove_object("3")))
    assert reply.success and list(reply.object_ids) == ["1"] and reply.object_indices.tolist() == [2]
    assert [o.obj_id for o in feed(core, 2).objects] == [1] and tracker.object_ids == [1]
    reply = core.add_objects(add_objects(["5"], [(0, 0, 10, 10)]))
    assert reply.success and reply.object_indices.tolist() == [2, 1]  # object 3's label is free again

    for request, why in [
        (remove_object("9"), "unknown object id 9;"),
        (remove_object("x"), "unknown object id 'x'"),
        (remove_object(""), "object id is empty"),
    ]:
        reply = core.remove_object(request)
        assert not reply.success and why in reply.message and list(reply.object_ids) == ["1", "5"]
    for request, why in [
        (add_objects([], [], ["2"], [(70, 10)]), "outside the 64x48 image"),
        (add_objects(["2"], [(0, 0, 80, 10)]), "not inside the 64x48 image"),
        (add_objects(["6", "7", "8"], [(0, 0, 8, 8)] * 3), "3 new objects but only 2"),
        (add_objects([], [], [], []), "neither boxes nor points"),
    ]:
        reply = core.add_objects(request)
        assert not reply.success and why in reply.message and list(reply.object_ids) == ["1", "5"], reply.message


def test_bad_prompts_are_reported_and_tracking_goes_on(model):
    core, tracker, log = make_core(model)
    core.on_point(point(500, 6))  # no frame yet: cannot be checked before the tracker sees it
    out = feed(core, 0)
    assert "tap for object 1 refused" in log.text("error") and "outside the 64x48 frame" in log.text("error")
    assert out is not None and out.objects == [] and core.stats.refused_prompts == 1
    assert list(core.add_objects(add_objects(["4"], [(0, 0, 8, 8)])).object_ids) == ["4"]  # object 1 was dropped
    core.on_point(point(-1, 6))  # now checked at once, nothing reaches the tracker
    assert "outside the 64x48 image" in log.text("warning")
    prompt = roundtrip(
        TYPES[OBJECT_PROMPT](
            header=m.header_msg(0, ""), object_id=2, points=[point2d(1, 1)], labels=np.array([], dtype=np.int32), box=[]
        )
    )
    core.on_prompt(prompt)
    assert "1 points but 0 labels" in log.text("warning")
    feed(core, 1)
    assert tracker.object_ids == [4]


def test_reset_and_enable(model):
    core, tracker, _ = make_core(model)
    feed(core, 0)
    core.on_point(point(5, 6))
    feed(core, 1)
    assert core.reset() == core.reset().__class__(True, "reset: 1 objects forgotten")
    out = feed(core, 2)
    assert tracker.calls[-2:] == [("reset",), ("track", 0)]  # a fresh stream
    assert out.objects == [] and out.label_info is not None and len(out.label_info.class_map) == 1

    assert core.enable(False).message == "tracking paused"
    core.on_image(image(3))
    assert core.step() is None and tracker.calls[-1] == ("track", 0)
    assert core.enable(True).success
    assert feed(core, 4) is not None and tracker.calls[-1] == ("track", 1)


# ------------------------------------------------------------------ outputs
def test_outputs_carry_the_input_header_and_agree(model):
    core, _, _ = make_core(model, publish_masks=True)
    feed(core, 0)
    core.add_objects(add_objects(["2", "9"], [(4, 4, 40, 30), (20, 10, 60, 46)], ns=stamp(0)))
    out = feed(core, 1, overlay=True)
    msgs = {topic: roundtrip(msg) for topic, msg in out.messages()}
    assert list(msgs) == ["label_info", "label_image", "detections", "tracked_objects", "overlay"]
    for msg in msgs.values():
        assert m.stamp_ns(msg.header) == stamp(1) and msg.header.frame_id == "camera_optical"

    labels, tracked = msgs["label_image"], msgs["tracked_objects"]
    assert (labels.encoding, labels.height, labels.width) == ("mono8", *HW)
    label_map = labels.data.reshape(HW)
    assert [(o.object_id, o.label) for o in tracked.objects] == [(2, 1), (9, 2)]
    assert [(c.class_id, c.class_name) for c in msgs["label_info"].class_map] == [(0, "background"), (1, "2"), (2, "9")]
    masks = np.stack([o.mask[0].data.reshape(HW) == 255 for o in tracked.objects])
    assert masks.any(), "random weights gave empty masks: the checks below would be vacuous"
    alone = masks.sum(axis=0) == 1
    np.testing.assert_array_equal(label_map[alone], np.array([1, 2], np.uint8)[masks.argmax(axis=0)][alone])
    assert (label_map[~masks.any(axis=0)] == 0).all()

    visible = [o for o in tracked.objects if o.visible]
    assert [d.id for d in msgs["detections"].detections] == [str(o.object_id) for o in visible]
    for det, obj in zip(msgs["detections"].detections, visible):
        assert det.results[0].hypothesis.score == pytest.approx(obj.score)
        assert m.box_from_bbox2d(det.bbox) == m.box_from_bbox2d(obj.box)
        ys, xs = np.nonzero(masks[tracked.objects.index(obj)])
        assert m.box_from_bbox2d(obj.box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    for obj in tracked.objects:
        assert 0 <= obj.score <= 1 and obj.visible == (obj.score > 0.5 and bool(masks[obj.label - 1].any()))

    overlay = msgs["overlay"]
    assert (overlay.encoding, overlay.height, overlay.width) == ("rgb8", *HW)
    unchanged = (image_to_rgb(overlay) == pixels(1)).all(axis=2)
    assert not unchanged[label_map > 0].any()  # every object pixel is tinted
    assert unchanged[label_map == 0].mean() > 0.5  # the background is untouched but for boxes and ids

    again = feed(core, 2)
    assert again.label_info is None and again.overlay is None  # unchanged labels; nobody asked for an overlay


def test_label_image_follows_the_highest_logit():
    logits = torch.full((3, 2, 3), -5.0)
    logits[0, 0, :2] = 2.0
    logits[1, 0, 1:] = 3.0  # wins pixel (0, 1) over object 4
    logits[2, 1, :] = 9.0  # object 6 has no label: left out
    result = TrackResult(0, (2, 3), [4, 5, 6], logits, torch.zeros(3), torch.zeros(3, 4), torch.ones(3, dtype=bool))
    np.testing.assert_array_equal(label_image(result, {4: 1, 5: 7}), [[1, 7, 7], [0, 0, 0]])


def test_bad_images_are_logged_per_kind_rate_limited_and_dropped(model):
    clock = [0.0]
    core, _, log = make_core(model, clock=lambda: clock[0])
    depth = image(0, "16UC1", np.zeros(HW, np.uint16))
    short = image(0, "rgb8")
    short.data = short.data[:-3]
    jpeg = roundtrip(
        TYPES["sensor_msgs/msg/CompressedImage"](header=header(0), format="jpeg", data=np.arange(100, dtype=np.uint8))
    )
    for msg in [depth, depth, jpeg, b"\x00\x01\x00\x00garbage", short, depth]:
        core.on_image(msg)  # never raises
        assert core.step() is None
    errors = [msg for level, msg in log.lines if level == "error"]
    assert len(errors) == 4, errors  # one per distinct fault; the repeated depth images are held back
    assert "image encoding '16UC1' holds depth" in errors[0] and "could not decode 100 bytes" in errors[1]
    assert "not a sensor_msgs/msg/Image message" in errors[2] and "needs 9216 bytes, got 9213" in errors[3]
    assert all("\n" not in e for e in errors)
    assert core.stats.rejected_frames == 6
    clock[0] += 5.0  # a period later the depth images are reported again, with the count held back
    core.on_image(depth)
    core.step()
    assert "16UC1" in log.lines[-1][1] and "(2 more like this in the last 5 s not logged)" in log.lines[-1][1]
    core.on_image(bytes(STORE.serialize_cdr(image(1), "sensor_msgs/msg/Image")))  # the node's raw path
    out = core.step()
    assert out is not None and m.stamp_ns(out.header) == stamp(1)


def test_compressed_transport_reads_compressed_cdr(model):
    core, _, _ = make_core(model, image_transport="compressed")
    _, png = cv2.imencode(".png", cv2.cvtColor(pixels(3), cv2.COLOR_RGB2BGR))
    msg = TYPES["sensor_msgs/msg/CompressedImage"](header=header(3), format="png", data=png.reshape(-1))
    core.on_image(bytes(STORE.serialize_cdr(msg, msg.__msgtype__)))
    out = core.step(overlay=True)
    np.testing.assert_array_equal(image_to_rgb(out.overlay), pixels(3))  # nothing tracked: the frame itself


# ------------------------------------------------------------------ concurrency and bounds
def test_latest_frame_slot_newest_wins_under_a_producer_thread():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    count = 2000

    def produce() -> None:
        for i in range(count):
            slot.put(i)
            if i % 50 == 0:
                time.sleep(0.001)

    producer = threading.Thread(target=produce)
    producer.start()
    taken = []
    while producer.is_alive():
        item = slot.take(timeout=0.01)
        if item is not None:
            taken.append(item)
            time.sleep(0.002)  # a slow consumer
    producer.join()
    last = slot.take()
    if last is not None:
        taken.append(last)
    assert taken == sorted(set(taken)) and taken[-1] == count - 1
    assert slot.received == count and slot.dropped == count - len(taken) > 0


def test_slot_wake_ends_a_wait():
    slot: LatestFrameSlot[int] = LatestFrameSlot()
    threading.Timer(0.05, slot.wake).start()
    t0 = time.perf_counter()
    assert slot.take(timeout=5.0) is None and time.perf_counter() - t0 < 2.0


def test_command_queue_is_bounded(model):
    core, tracker, log = make_core(model)
    feed(core, 0)
    for i in range(COMMAND_QUEUE_LIMIT + 1):
        core.on_point(point(1 + i % 60, 5))
    assert log.text("warning").count("command queue full") == 1
    reply = core.add_objects(add_objects(["2"], [(0, 0, 8, 8)]))
    assert not reply.success and "command queue full" in reply.message
    assert core.reset().success  # always fits: it replaces the queue
    feed(core, 1)
    assert tracker.calls[1:] == [("reset",), ("track", 0)]


def test_diagnostics(model):
    clock = [100.0]
    core, _, _ = make_core(model, clock=lambda: clock[0])
    for i in range(3):
        core.on_image(image(i))  # two of these are overwritten before the model sees them
    first = core.step()
    assert (first.dropped_frames, first.fps) == (2, 0.0) and first.latency_ms >= 0 and first.inference_ms > 0
    clock[0] += 0.25
    assert feed(core, 3).fps == pytest.approx(4.0)
    core.on_image(image(9, "16UC1", np.zeros(HW, np.uint16)))
    core.step()
    core.report_bad_message("geometry_msgs/msg/Point", ValueError("truncated"))
    clock[0] += 1.75  # a 2 s window with 2 frames tracked
    (status,) = core.diagnostics(m.header_msg(5, ""), "tracker: tracking").status
    values = {kv.key: kv.value for kv in status.values}
    assert (status.name, status.level) == ("tracker: tracking", status.WARN)
    assert "could not be decoded" in status.message
    assert (values["fps"], values["frames_received"], values["frames_dropped"], values["frames_rejected"]) == (
        "1.00",
        "5",
        "2",
        "1",
    )
    assert float(values["latency_ms_mean"]) >= 0 and values["enabled"] == "true"
    assert values["messages_unreadable"] == "1"
    clock[0] += 1.0
    (status,) = core.diagnostics(m.header_msg(6, ""), "x").status
    assert status.level == status.WARN and "no frame tracked in the last 1.0 s" in status.message


# ------------------------------------------------------------------ parameters, launch, packaging
def test_config_file_matches_the_parameter_definitions():
    import yaml

    section = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())[P.PARAMS_FILE_KEY]["ros__parameters"]
    assert list(section) == [s.name for s in P.parameter_specs()]
    assert P.load_params_file(REPO / "config" / "tracker.yaml") == P.TrackerParams()


def test_parameter_table_is_current():
    text = (REPO / "docs" / "parameters.md").read_text()
    assert P.markdown_table() in text, "regenerate docs/parameters.md (params.parameters_doc())"


def test_parameters_are_checked():
    assert P.TrackerParams.from_dict({"diagnostics_period": 2}).diagnostics_period == 2.0
    for values, why in [
        ({"max_objects": "4"}, "must be a int"),
        ({"max_objects": True}, "must be a int"),
        ({"publish_masks": 1}, "must be a bool"),
        ({"max_objects": 256}, "<= 255"),
        ({"tap_mode": "toggle"}, "must be one of replace, add"),
        ({"precision": "int8"}, "one of"),
        ({"modle": "x"}, "unknown parameters modle"),
    ]:
        with pytest.raises(ValueError, match=why):
            P.TrackerParams.from_dict(values)
    assert [s.name for s in P.parameter_specs() if s.dynamic] == ["tap_mode", "publish_masks"]


def test_launch_file_offers_the_documented_arguments():
    tree = ast.parse((REPO / "launch" / "tracker.launch.py").read_text())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and isinstance(node.args[0], ast.Constant)
    }
    (parameters,) = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARAMETER_ARGUMENTS"
    ]
    declared |= set(ast.literal_eval(parameters))
    assert {
        "image_topic",
        "model",
        "checkpoint",
        "backend",
        "engine_dir",
        "precision",
        "max_objects",
        "tap_mode",
        "params_file",
        "click_topic",
    } <= declared
    assert set(ast.literal_eval(parameters)) <= {s.name for s in P.parameter_specs()}


def test_node_is_reached_only_through_its_entry_point():
    """node.py needs rclpy: nothing else may import it, and the ``tracker`` executable must point at it."""
    compile((REPO / "sam2_ros" / "ros" / "node" / "node.py").read_text(), "node.py", "exec")
    importers = [
        p
        for p in (REPO / "sam2_ros").rglob("*.py")
        if "sam2_ros.ros.node.node" in p.read_text() and p.name not in ("node.py", "lifecycle_node.py")
    ]
    assert importers == []
    assert '"tracker = sam2_ros.ros.node.node:main"' in (REPO / "ros" / "sam2_ros" / "setup.py").read_text()


def test_colcon_installs_the_executable_launch_and_config(tmp_path: Path):
    pytest.importorskip("colcon_core")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sam2_ros").symlink_to(REPO, target_is_directory=True)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from colcon_core.command import main; sys.exit(main())",
            "--log-base",
            "/dev/null",
            "build",
            "--base-paths",
            "src/sam2_ros/ros/sam2_ros",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    prefix = tmp_path / "install" / "sam2_ros"
    script = (prefix / "lib" / "sam2_ros" / "tracker").read_text()
    assert "sam2_ros.ros.node.node" in script or "console_scripts" in script
    assert (prefix / "share" / "sam2_ros" / "launch" / "tracker.launch.py").is_file()
    assert (prefix / "share" / "sam2_ros" / "config" / "tracker.yaml").is_file()


# ------------------------------------------------------------------ replay
ARM_FRAMES, ARM_SIZE = 10, (160, 90)


def run_cli(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def arm_frames(data_dir: Path) -> list[np.ndarray]:
    """The first frames of the robot-arm clip, downscaled (BGR)."""
    capture = cv2.VideoCapture(str(data_dir / "videos" / "16_robotarm.mp4"))
    frames = []
    while len(frames) < ARM_FRAMES:
        ok, bgr = capture.read()
        assert ok
        frames.append(cv2.resize(bgr, ARM_SIZE, interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def write_bag(
    path: Path,
    frames: list[np.ndarray],
    storage: StoragePlugin,
    compressed: bool = False,
    stamps: list[int] | None = None,
) -> list[tuple[int, int]]:
    """A camera bag of ``frames``; returns each image's (header stamp, record time), which differ on purpose."""
    stamps = stamps if stamps is not None else [stamp(i) for i in range(len(frames))]
    times = []
    with Writer(path, version=9, storage_plugin=storage) as writer:
        kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
        connection = writer.add_connection(topic, kind, typestore=STORE)
        other = writer.add_connection("/camera/camera_info_text", "std_msgs/msg/String", typestore=STORE)
        for ns, bgr in zip(stamps, frames):
            hdr = m.header_msg(ns, "camera")
            if compressed:
                msg = TYPES[kind](header=hdr, format="jpeg", data=cv2.imencode(".jpg", bgr)[1].reshape(-1))
            else:
                msg = TYPES[kind](
                    header=hdr,
                    height=bgr.shape[0],
                    width=bgr.shape[1],
                    encoding="bgr8",
                    is_bigendian=0,
                    step=bgr.shape[1] * 3,
                    data=bgr.reshape(-1),
                )
            record = ns + 7_000_000
            writer.write(connection, record, bytes(STORE.serialize_cdr(msg, kind)))
            text = TYPES["std_msgs/msg/String"](data="not an image")
            writer.write(other, record, bytes(STORE.serialize_cdr(text, "std_msgs/msg/String")))
            times.append((ns, record))
    return times


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    topics: dict[str, list[tuple[int, object]]] = {}
    with Reader(path) as reader:
        for connection, record, raw in reader.messages():
            topics.setdefault(connection.topic, []).append((record, STORE.deserialize_cdr(raw, connection.msgtype)))
    return topics


@pytest.fixture(scope="module")
def replay(arm_frames, tmp_path_factory) -> tuple[Path, list[tuple[int, int]], str]:
    folder = tmp_path_factory.mktemp("replay")
    times = write_bag(folder / "in", arm_frames, StoragePlugin.MCAP)
    rc, out, err = run_cli(
        [
            "track",
            "--bag",
            folder / "in",
            "--image-topic",
            "/camera/image_raw",
            "--out-bag",
            folder / "out.mcap",
            *RANDOM_TINY,
            "--object-masks",
            "--box",
            "1:60,20,120,80",
            "--point",
            "1:90,50",
            "--point",
            "2:20,20@3",
            "--point",
            "2:30,25:0@3",
        ]
    )
    assert rc == 0, err
    assert "UNTRAINED" in err
    return folder / "out.mcap", times, out


def test_replay_writes_the_node_topics(replay):
    path, times, summary = replay
    assert path.is_file()
    with Reader(path) as reader:
        latched = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert latched["/tracker/label_info"][0].durability == QosDurability.TRANSIENT_LOCAL
    topics = read_bag(path)
    assert {t: len(v) for t, v in topics.items()} == {
        "/tracker/label_info": 2,
        "/tracker/label_image": ARM_FRAMES,
        "/tracker/detections": ARM_FRAMES,
        "/tracker/tracked_objects": ARM_FRAMES,
        "/tracker/overlay": ARM_FRAMES,
    }
    assert "replayed 10 images of /camera/image_raw" in summary
    for topic in ("/tracker/label_image", "/tracker/detections", "/tracker/tracked_objects", "/tracker/overlay"):
        assert [(m.stamp_ns(msg.header), record) for record, msg in topics[topic]] == times
        assert {msg.header.frame_id for _, msg in topics[topic]} == {"camera"}
    assert [record for record, _ in topics["/tracker/label_info"]] == [times[0][1], times[3][1]]
    last_info = topics["/tracker/label_info"][-1][1]
    assert [(c.class_id, c.class_name) for c in last_info.class_map] == [(0, "background"), (1, "1"), (2, "2")]
    ids = [[o.object_id for o in msg.objects] for _, msg in topics["/tracker/tracked_objects"]]
    assert ids == [[1]] * 3 + [[1, 2]] * 7
    for (_, labels), (_, tracked) in zip(topics["/tracker/label_image"], topics["/tracker/tracked_objects"]):
        assert (labels.encoding, labels.width, labels.height) == ("mono8", *ARM_SIZE)
        assert set(np.unique(labels.data).tolist()) <= {0, 1, 2}
        assert all(len(o.mask) == 1 and o.mask[0].height == ARM_SIZE[1] for o in tracked.objects)


def test_replay_matches_the_cli_frame_for_frame(replay, arm_frames, tmp_path: Path):
    """Same frames (lossless PNGs), prompts and seed: the CLI's label PNGs equal the replay's label images."""
    for i, bgr in enumerate(arm_frames):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), bgr)
    rc, _, err = run_cli(
        [
            "track",
            tmp_path,
            "--out",
            tmp_path / "cli",
            *RANDOM_TINY,
            "--no-overlay",
            "--box",
            "1:60,20,120,80",
            "--point",
            "1:90,50",
            "--point",
            "2:20,20@3",
            "--point",
            "2:30,25:0@3",
        ]
    )
    assert rc == 0, err
    replayed = [msg.data.reshape(ARM_SIZE[1], ARM_SIZE[0]) for _, msg in read_bag(replay[0])["/tracker/label_image"]]
    assert any(labels.any() for labels in replayed)
    for i, labels in enumerate(replayed):  # object ids 1, 2 got labels 1, 2
        np.testing.assert_array_equal(
            labels, cv2.imread(str(tmp_path / "cli" / "masks" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        )


def test_replay_of_compressed_images_into_sqlite3(arm_frames, tmp_path: Path):
    times = write_bag(tmp_path / "in", arm_frames[:4], StoragePlugin.SQLITE3, compressed=True)
    rc, _, err = run_cli(
        [
            "track",
            "--bag",
            tmp_path / "in",
            "--out-bag",
            tmp_path / "out",
            *RANDOM_TINY,
            "--no-overlay",
            "--topic-prefix",
            "/arm/sam2/",
            "--box",
            "4:10,10,80,80@1",
        ]
    )
    assert rc == 0, err
    assert (tmp_path / "out" / "metadata.yaml").is_file()
    topics = read_bag(tmp_path / "out")
    assert sorted(topics) == [
        "/arm/sam2/detections",
        "/arm/sam2/label_image",
        "/arm/sam2/label_info",
        "/arm/sam2/tracked_objects",
    ]
    assert [m.stamp_ns(msg.header) for _, msg in topics["/arm/sam2/label_image"]] == [s for s, _ in times]
    assert [[o.object_id for o in msg.objects] for _, msg in topics["/arm/sam2/tracked_objects"]] == [[], [4], [4], [4]]


def test_replay_argument_errors(arm_frames, tmp_path: Path):
    write_bag(tmp_path / "in", arm_frames[:2], StoragePlugin.MCAP, stamps=[0, 0])
    cases = [
        (["--bag", tmp_path / "in"], "--bag and --out-bag go together"),
        (["clip.mp4", "--bag", tmp_path / "in", "--out-bag", tmp_path / "o.mcap"], "INPUT and --out are for videos"),
        (["--bag", tmp_path / "in", "--out-bag", tmp_path / "in"], "exists; choose a new --out-bag"),
        (
            ["--bag", tmp_path / "in", "--image-topic", "/nope", "--out-bag", tmp_path / "o.mcap"],
            "no sensor_msgs Image or CompressedImage topic '/nope' (image topics: /camera/image_raw)",
        ),
        (
            ["--bag", tmp_path / "in", "--out-bag", tmp_path / "o.mcap", "--point", "1:5,5@1"],
            "image 1 on /camera/image_raw has stamp 0",
        ),
        ([], "give INPUT and --out DIR (or --bag IN and --out-bag OUT"),
    ]
    for argv, message in cases:
        rc, _, err = run_cli(["track", *argv, *RANDOM_TINY])
        assert rc == 2 and message in err, (argv, err)
    assert not (tmp_path / "o.mcap").exists() and not any(p.name.startswith(".o.mcap") for p in tmp_path.iterdir())


def test_replay_reports_refused_prompts(arm_frames, tmp_path: Path):
    write_bag(tmp_path / "in", arm_frames[:2], StoragePlugin.MCAP)
    rc, _, err = run_cli(
        ["track", "--bag", tmp_path / "in", "--out-bag", tmp_path / "o.mcap", *RANDOM_TINY, "--point", "1:500,5"]
    )
    assert rc == 1 and re.search(r"prompt for object 1 refused: .*outside the 160x90 frame", err), err
    assert "1 prompts were refused" in err and (tmp_path / "o.mcap").is_file()
