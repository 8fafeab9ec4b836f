"""The node core with depth: CDR depth images and camera info, pairing by stamp, 3-D outputs, failures.

The tracker is a stand-in whose masks are known boxes (random weights give arbitrary masks, and
this is about the depth plumbing): object 1's mask is the box in front of a wall at 1.5 m that
the depth images show at 0.8 m. Every message handed to the core went through CDR first.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.messages3d import DEPTH_OUTPUT_TYPES, DETECTIONS_3D, OBJECT_POINTS, TARGET_POINT
from sam2_ros.ros.interfaces.typesys import TRACKED_OBJECT, typestore
from sam2_ros.ros.node.core import TrackerCore
from sam2_ros.ros.node.params import TrackerParams
from sam2_ros.tracking import TrackResult
from sam2_ros.tracking.imageops import boxes_from_masks
from sam2_ros.tracking.track_state import TrackState, TrackStates
from tests.test_ros_core import HW, ListLogger, header, image, roundtrip, stamp

STORE = typestore()
TYPES = STORE.types
FX = FY = 50.0
CX, CY = 31.5, 23.5
BOX = (20, 10, 44, 34)  # x1, y1, x2, y2 (exclusive) of object 1's mask and of the near surface
NEAR_MM, WALL_MM = 800, 1500


class BoxTracker:
    """Sam2Tracker's interface with fixed masks: object 1 = BOX, object k = a 6 px box at row 4k."""

    def __init__(self) -> None:
        self.bank = SimpleNamespace(max_objects=4)
        self.states = TrackStates()
        self.ids: list[int] = []
        self.hidden: set[int] = set()  # objects whose mask is empty and presence negative
        self.frame = -1

    @property
    def object_ids(self) -> list[int]:
        return list(self.ids)

    def track(self, rgb):
        self.frame += 1
        self.hw = rgb.shape[:2]
        return self._result()

    def add_points(self, obj_id, points, labels=None):
        if obj_id not in self.ids:
            self.ids.append(obj_id)
        return self._result([obj_id])

    def remove_object(self, obj_id):
        self.ids.remove(obj_id)
        self.states.forget(obj_id)

    def reset(self):
        self.ids.clear()
        self.states.clear()

    def _result(self, prompted=()):
        h, w = self.hw
        logits = torch.full((len(self.ids), h, w), -10.0)
        scores = torch.full((len(self.ids),), 5.0)
        for row, obj_id in enumerate(self.ids):
            x1, y1, x2, y2 = BOX if obj_id == 1 else (4, 4 * obj_id, 10, 4 * obj_id + 6)
            if obj_id in self.hidden:
                scores[row] = -5.0
            else:
                logits[row, y1:y2, x1:x2] = 10.0
        boxes, nonempty = boxes_from_masks(logits > 0)
        result = TrackResult(self.frame, (h, w), list(self.ids), logits, scores, boxes, nonempty & (scores > 0))
        result.states, lost = self.states.observe(self.frame, result.object_ids, result.masks, result.visible, prompted)
        for obj_id in lost:  # as Sam2Tracker does
            self.remove_object(obj_id)
        return result


def depth_mm(shape=HW) -> np.ndarray:
    depth = np.full(shape, WALL_MM, np.uint16)
    depth[BOX[1] : BOX[3], BOX[0] : BOX[2]] = NEAR_MM
    depth[0, 0] = 0  # a hole
    return depth


def depth_msg(ns: int, data: np.ndarray, encoding: str = "16UC1"):
    return roundtrip(
        TYPES["sensor_msgs/msg/Image"](
            header=m.header_msg(ns, "camera_optical"),
            height=data.shape[0],
            width=data.shape[1],
            encoding=encoding,
            is_bigendian=0,
            step=data.shape[1] * data.itemsize,
            data=data.reshape(-1).view(np.uint8),
        )
    )


def camera_info(k=(FX, 0, CX, 0, FY, CY, 0, 0, 1), hw=HW):
    roi = TYPES["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return roundtrip(
        TYPES["sensor_msgs/msg/CameraInfo"](
            header=m.header_msg(stamp(0), "camera_optical"),
            height=hw[0],
            width=hw[1],
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=np.array(k, dtype=np.float64),
            r=np.eye(3).reshape(-1),
            p=np.zeros(12),
            binning_x=0,
            binning_y=0,
            roi=roi,
        )
    )


def make_core(**params):
    log = ListLogger()
    core = TrackerCore(BoxTracker(), TrackerParams(use_depth=True, **params), log)
    return core, log


def tapped_frame(core, i=0, depth=None, info=True, cloud=False):
    """Feed camera info, depth (if given) and image i; tap object 1 on the first frame."""
    if info:
        core.on_camera_info(camera_info())
    if depth is not None:
        core.on_depth(depth)
    core.on_image(image(i))
    if i == 0:
        core.on_point_stamped(
            roundtrip(
                TYPES["geometry_msgs/msg/PointStamped"](
                    header=m.header_msg(0, ""), point=TYPES["geometry_msgs/msg/Point"](x=30.0, y=20.0, z=0.0)
                )
            )
        )
    return core.step(cloud=cloud)


def expected_centre() -> np.ndarray:
    z = NEAR_MM / 1000
    return np.array([((BOX[0] + BOX[2] - 1) / 2 - CX) * z / FX, ((BOX[1] + BOX[3] - 1) / 2 - CY) * z / FY, z])


def diag(core) -> dict[str, str]:
    status = core.diagnostics(header(0), "tracker").status[0]
    return {kv.key: kv.value for kv in status.values}


def test_depth_paired_by_stamp_gives_detections_3d_and_the_target_point():
    core, log = make_core()
    out = tapped_frame(core, depth=depth_msg(stamp(0) + 5_000_000, depth_mm()))  # 5 ms after the colour frame
    topics = dict(out.messages())
    det = topics[DETECTIONS_3D]
    assert det.header == out.header and len(det.detections) == 1
    d = det.detections[0]
    assert d.id == "1" and d.results[0].hypothesis.class_id == "1"
    assert d.results[0].hypothesis.score == pytest.approx(1 / (1 + np.exp(-5.0)), abs=1e-6)
    centre = expected_centre()
    got = [d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z]
    np.testing.assert_allclose(got, centre, atol=0.003)
    width = (BOX[2] - BOX[0]) * NEAR_MM / 1000 / FX
    assert d.bbox.size.x == pytest.approx(width, rel=0.05) and d.bbox.size.z == pytest.approx(0, abs=1e-6)
    target = topics[TARGET_POINT]
    assert target.header == out.header
    np.testing.assert_allclose([target.point.x, target.point.y, target.point.z], centre, atol=0.01)
    assert OBJECT_POINTS not in topics  # no cloud unless asked
    for topic, msg in topics.items():  # every message serializes as the type the node advertises
        if topic in DEPTH_OUTPUT_TYPES:
            assert msg.__msgtype__ == DEPTH_OUTPUT_TYPES[topic]
            STORE.serialize_cdr(msg, msg.__msgtype__)
    assert diag(core)["depth_paired"] == "1" and diag(core)["frames_3d"] == "1"
    assert not log.text("error")


def test_cloud_only_when_asked_with_labels_and_points_on_the_object():
    core, _ = make_core(cloud_stride=2)
    out = tapped_frame(core, depth=depth_msg(stamp(0), depth_mm()), cloud=True)
    cloud = roundtrip(dict(out.messages())[OBJECT_POINTS])
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "label"] and cloud.point_step == 16
    # Read the bytes with a plain numpy layout, independent of the writer's structured array.
    raw = np.frombuffer(bytes(cloud.data), dtype=np.uint8).reshape(cloud.width, 16)
    xyz = raw[:, :12].copy().view("<f4")
    labels = raw[:, 12:].copy().view("<u4")[:, 0]
    assert cloud.width == ((BOX[2] - BOX[0]) // 2) * ((BOX[3] - BOX[1]) // 2)
    assert set(labels.tolist()) == {1} and np.allclose(xyz[:, 2], NEAR_MM / 1000)


def test_32fc1_matches_16uc1():
    results = []
    for msg in (
        depth_msg(stamp(0), depth_mm()),
        depth_msg(stamp(0), np.where(depth_mm() == 0, np.nan, depth_mm() / 1000).astype(np.float32), "32FC1"),
    ):
        core, log = make_core()
        det = dict(tapped_frame(core, depth=msg).messages())[DETECTIONS_3D].detections[0]
        results.append([det.bbox.center.position.z, det.bbox.size.x, det.results[0].pose.pose.position.x])
        assert not log.text("error")
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)


def test_missing_and_stale_depth_never_block_2d_tracking():
    core, log = make_core()
    out = tapped_frame(core)  # no depth at all
    assert out is not None and out.tracked_objects.objects and DETECTIONS_3D not in dict(out.messages())
    core.on_depth(depth_msg(stamp(1) + 100_000_000, depth_mm()))  # 0.1 s off: beyond depth_tolerance 0.02
    core.on_image(image(1))
    out = core.step()
    assert out is not None and DETECTIONS_3D not in dict(out.messages())
    core.on_depth(depth_msg(stamp(2), depth_mm()))
    core.on_image(image(2))
    assert DETECTIONS_3D in dict(core.step().messages())
    d = diag(core)
    assert (d["depth_missing"], d["depth_stale"], d["depth_paired"]) == ("1", "1", "1")


def test_no_camera_info_and_bad_camera_info_are_counted_and_logged():
    core, log = make_core()
    out = tapped_frame(core, depth=depth_msg(stamp(0), depth_mm()), info=False)
    assert out is not None and DETECTIONS_3D not in dict(out.messages())
    assert diag(core)["depth_no_camera_info"] == "1"
    core.on_camera_info(camera_info(k=(0,) * 9))
    assert "uncalibrated" in log.text("error")
    core.on_camera_info(b"\x00\x01garbage")
    assert diag(core)["camera_info_rejected"] == "2"


@pytest.mark.parametrize("encoding,data", [("8UC1", np.zeros(HW, np.uint8)), ("rgb8", np.zeros((*HW, 3), np.uint8))])
def test_unsupported_depth_encodings_are_logged_once_and_tracking_goes_on(encoding, data):
    core, log = make_core()
    for i in range(3):
        msg = roundtrip(
            TYPES["sensor_msgs/msg/Image"](
                header=m.header_msg(stamp(i), "c"),
                height=HW[0],
                width=HW[1],
                encoding=encoding,
                is_bigendian=0,
                step=data.strides[0],
                data=data.reshape(-1),
            )
        )
        out = tapped_frame(core, i, depth=msg)
        assert out is not None and out.tracked_objects.objects
        assert DETECTIONS_3D not in dict(out.messages())
    errors = [line for level, line in log.lines if level == "error"]
    assert len(errors) == 1 and f"unsupported depth encoding '{encoding}'" in errors[0] and "16UC1" in errors[0]
    assert diag(core)["depth_rejected"] == "3"


def test_mismatched_depth_resolution_is_refused_with_a_clear_log():
    core, log = make_core()
    out = tapped_frame(core, depth=depth_msg(stamp(0), np.full((30, 40), 900, np.uint16)))
    assert out is not None and out.tracked_objects.objects and DETECTIONS_3D not in dict(out.messages())
    assert "aspect ratios differ" in log.text("error") or "whole-number" in log.text("error")
    # Half-resolution depth (same view) is fine: the intrinsics are scaled.
    core, log = make_core()
    half = depth_mm()[::2, ::2].copy()
    out = tapped_frame(core, depth=depth_msg(stamp(0), half))
    det = dict(out.messages())[DETECTIONS_3D].detections[0]
    assert det.bbox.center.position.z == pytest.approx(NEAR_MM / 1000)
    assert not log.text("error")


def test_depth_cdr_bytes_and_garbage_and_bounded_buffer():
    core, log = make_core()
    msg = depth_msg(stamp(0), depth_mm())
    core.on_depth(bytes(STORE.serialize_cdr(msg, msg.__msgtype__)))
    core.on_depth(b"not cdr")
    assert "depth message dropped" in log.text("error")
    out = tapped_frame(core)
    assert DETECTIONS_3D in dict(out.messages())
    for _ in range(100):
        core.on_depth(msg)
    assert len(core.depth.sync._depth) == core.depth.sync._depth.maxlen == 8


def test_tracked_objects_carry_the_track_state_and_last_seen_stamp():
    core, _ = make_core()
    out = tapped_frame(core, depth=depth_msg(stamp(0), depth_mm()))
    obj = out.tracked_objects.objects[0]
    assert obj.state == TYPES[TRACKED_OBJECT].STATE_TRACKING == int(TrackState.TRACKING)
    assert (obj.frames_since_seen, obj.reacquisitions) == (0, 0)
    assert obj.last_seen.sec * 1_000_000_000 + obj.last_seen.nanosec == stamp(0)
    assert diag(core)["objects_tracking"] == "1"


def test_without_use_depth_depth_inputs_are_ignored():
    core = TrackerCore(BoxTracker(), TrackerParams(), ListLogger())
    core.on_depth(depth_msg(stamp(0), depth_mm()))
    core.on_camera_info(camera_info())
    out = tapped_frame(core)
    assert core.depth is None and not out.depth and "depth_paired" not in diag(core)


def test_a_frame_waits_briefly_for_depth_that_arrives_after_it():
    """Registered depth is published after its colour image: a depth image 20 ms late still pairs."""
    import threading

    core, log = make_core()
    core.on_camera_info(camera_info())
    core.on_depth(depth_msg(stamp(0) - 33_000_000, depth_mm()))  # the previous frame's: too old
    late = threading.Timer(0.02, core.on_depth, [depth_msg(stamp(0), depth_mm())])
    late.start()
    out = tapped_frame(core, info=False)
    late.join()
    assert DETECTIONS_3D in dict(out.messages()) and diag(core)["depth_paired"] == "1"
    # Nothing newer ever comes: the frame goes out without 3-D after the bounded wait.
    core.on_image(image(5))
    out = core.step()
    assert out is not None and DETECTIONS_3D not in dict(out.messages()) and diag(core)["depth_stale"] == "1"


def test_lost_objects_are_reported_then_removed_and_their_label_freed():
    core, _ = make_core(tap_mode="add", lost_after_frames=1, remove_lost_after=3)
    tapped_frame(core, depth=depth_msg(stamp(0), depth_mm()))
    core.tracker.hidden.add(1)
    states = []
    for i in range(1, 5):
        core.on_image(image(i))
        out = core.step()
        states.append([(o.object_id, o.state, o.frames_since_seen) for o in out.tracked_objects.objects])
        assert DETECTIONS_3D not in dict(out.messages()) or not dict(out.messages())[DETECTIONS_3D].detections
    assert states == [[(1, 2, 1)], [(1, 3, 2)], [], []]  # OCCLUDED, LOST, then removed on its 3rd unseen frame
    assert core.tracker.object_ids == [] and core._objects.labels == {}
