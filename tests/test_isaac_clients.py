"""Isaac ROS SAM 2 clients against the node's core: their requests, their string ids, their limits.

Isaac's requests are built with Isaac's own service types (isaac_ros_segment_anything2_interfaces,
their fields as NVIDIA's srv files define them, registered in a separate rosbags store),
serialized to CDR, and read back as sam2_ros_interfaces types; the answers travel the other way.
So these tests show what an Isaac client rebuilt against sam2_ros_interfaces sends and gets,
byte for byte, and where the two nodes behave differently on purpose.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from sam2_ros.model import build_sam2
from sam2_ros.ros.interfaces import messages as m
from sam2_ros.ros.interfaces.typesys import (
    ADD_OBJECTS_REQUEST,
    ADD_OBJECTS_RESPONSE,
    REMOVE_OBJECT_REQUEST,
    REMOVE_OBJECT_RESPONSE,
    typestore,
)
from sam2_ros.ros.interfaces.vision_msgs_defs import VISION_MSGS
from sam2_ros.ros.node import params as P
from sam2_ros.ros.node.core import TrackerCore
from sam2_ros.ros.node.object_ids import ObjectRegistry
from sam2_ros.tracking import Sam2Tracker, TorchBackend
from tests.test_ros_core import ListLogger

OURS = typestore()
HW = (240, 320)  # the model runs at 128 px; the frame is big enough for Isaac's example boxes
T0 = 1_700_000_000_000_000_000

# The fields of isaac_ros_segment_anything2_interfaces' services (NVIDIA-ISAAC-ROS/
# isaac_ros_image_segmentation, srv/AddObjects.srv and srv/RemoveObject.srv), comments left out.
ISAAC = "isaac_ros_segment_anything2_interfaces/srv"
ISAAC_DEFINITIONS = {
    f"{ISAAC}/AddObjects_Request": """
std_msgs/Header request_header
string[] bbox_object_ids
vision_msgs/BoundingBox2D[] bbox_coords
string[] point_object_ids
vision_msgs/Point2D[] point_coords
int32[] point_labels
""",
    f"{ISAAC}/AddObjects_Response": """
string[] object_ids
int32[] object_indices
bool success
string message
""",
    f"{ISAAC}/RemoveObject_Request": """
std_msgs/Header request_header
string object_id
""",
    f"{ISAAC}/RemoveObject_Response": """
string[] object_ids
int32[] object_indices
bool success
string message
""",
}


@pytest.fixture(scope="module")
def isaac_store():
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name, text in {**VISION_MSGS, **ISAAC_DEFINITIONS}.items():
        (types[name],) = get_types_from_msg(text, name).values()
    store.register(types)
    return store


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=128)


class Recording(Sam2Tracker):
    """A real tracker that records the prompts it is given: (kind, object id, box or points, labels)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prompts: list[tuple] = []

    def add_points(self, obj_id, points, labels=None, clear_old_points=False):
        self.prompts.append(("points", obj_id, [tuple(p) for p in points], list(labels or [])))
        return super().add_points(obj_id, points, labels, clear_old_points)

    def add_box(self, obj_id, box, points=None, labels=None):
        self.prompts.append(("box", obj_id, tuple(box), [tuple(p) for p in points or []], list(labels or [])))
        return super().add_box(obj_id, box, points, labels)


def make_core(model, max_objects: int = 4) -> tuple[TrackerCore, Recording]:
    params = P.TrackerParams.from_dict({"max_objects": max_objects})
    tracker = Recording(TorchBackend(model), max_objects=max_objects)
    return TrackerCore(tracker, params, ListLogger(), time.monotonic), tracker


def frame(core: TrackerCore, i: int):
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 255, (*HW, 3), dtype=np.uint8)
    msg = OURS.types["sensor_msgs/msg/Image"](
        header=m.header_msg(T0 + i, "camera"),
        height=HW[0],
        width=HW[1],
        encoding="rgb8",
        is_bigendian=0,
        step=HW[1] * 3,
        data=pixels.reshape(-1),
    )
    core.on_image(bytes(OURS.serialize_cdr(msg, msg.__msgtype__)))
    return core.step()


def roundtrip(msg):
    return OURS.deserialize_cdr(OURS.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def isaac_add_objects(store, box_ids=(), boxes=(), point_ids=(), points=(), labels=()):
    """An Isaac AddObjects request as its clients build it (vision_msgs types, frame_id set, zero stamp)."""
    t = store.types
    bbox = [
        t["vision_msgs/msg/BoundingBox2D"](
            center=t["vision_msgs/msg/Pose2D"](
                position=t["vision_msgs/msg/Point2D"](x=float(cx), y=float(cy)), theta=0.0
            ),
            size_x=float(w),
            size_y=float(h),
        )
        for cx, cy, w, h in boxes
    ]
    return t[f"{ISAAC}/AddObjects_Request"](
        request_header=t["std_msgs/msg/Header"](
            stamp=t["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="camera_frame"
        ),
        bbox_object_ids=list(box_ids),
        bbox_coords=bbox,
        point_object_ids=list(point_ids),
        point_coords=[t["vision_msgs/msg/Point2D"](x=float(x), y=float(y)) for x, y in points],
        point_labels=np.array(labels, dtype=np.int32),
    )


def isaac_remove_object(store, object_id: str):
    t = store.types
    return t[f"{ISAAC}/RemoveObject_Request"](
        request_header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""),
        object_id=object_id,
    )


def call(store, core: TrackerCore, request):
    """Isaac request -> CDR -> our request -> the core -> our response -> CDR -> Isaac response."""
    add = request.__msgtype__.endswith("AddObjects_Request")
    ours, handler = (ADD_OBJECTS_REQUEST, core.add_objects) if add else (REMOVE_OBJECT_REQUEST, core.remove_object)
    response = handler(OURS.deserialize_cdr(store.serialize_cdr(request, request.__msgtype__), ours))
    ours_response = ADD_OBJECTS_RESPONSE if add else REMOVE_OBJECT_RESPONSE
    isaac_response = f"{ISAAC}/{'AddObjects' if add else 'RemoveObject'}_Response"
    return store.deserialize_cdr(OURS.serialize_cdr(response, ours_response), isaac_response)


def answer(response) -> tuple[bool, list[str], list[int]]:
    return bool(response.success), list(response.object_ids), response.object_indices.tolist()


# ------------------------------------------------------------------ the wire
def test_same_fields_same_bytes_but_a_different_type(isaac_store):
    """Isaac's and our services serialize identically, but they are different ROS types (name, RIHS01 hash)."""
    request = isaac_add_objects(isaac_store, ["obj1"], [(200, 200, 20, 20)], ["obj2", "obj2"], [(5, 6), (7, 8)], [1, 0])
    raw = isaac_store.serialize_cdr(request, request.__msgtype__)
    ours = OURS.deserialize_cdr(raw, ADD_OBJECTS_REQUEST)
    assert bytes(OURS.serialize_cdr(ours, ADD_OBJECTS_REQUEST)) == bytes(raw)
    assert list(ours.bbox_object_ids) == ["obj1"] and list(ours.point_object_ids) == ["obj2", "obj2"]
    for srv in ("AddObjects_Request", "AddObjects_Response", "RemoveObject_Request", "RemoveObject_Response"):
        isaac_fields = [(name, str(kind)) for name, kind in isaac_store.get_msgdef(f"{ISAAC}/{srv}").fields]
        our_fields = [(name, str(kind)) for name, kind in OURS.get_msgdef(f"sam2_ros_interfaces/srv/{srv}").fields]
        assert isaac_fields == our_fields, srv
        # The type hash covers the type name: a client built against Isaac's package does not match ours.
        assert isaac_store.hash_rihs01(f"{ISAAC}/{srv}") != OURS.hash_rihs01(f"sam2_ros_interfaces/srv/{srv}")


# ------------------------------------------------------------------ Isaac's own requests
def test_isaac_test_request_and_its_repeats(model, isaac_store):
    """Isaac's launch test sends bbox_object_ids ['id'] every second until masks arrive."""
    core, tracker = make_core(model)
    frame(core, 0)
    request = isaac_add_objects(isaac_store, ["id"], [(200, 200, 20, 20)])
    assert answer(call(isaac_store, core, request)) == (True, ["id"], [1])
    out = frame(core, 1)
    assert tracker.prompts == [("box", 1, (190.0, 190.0, 210.0, 210.0), [], [])]
    assert [(o.obj_id, o.caller_id, o.label) for o in out.objects] == [(1, "id", 1)]
    assert [(c.class_id, c.class_name) for c in out.label_info.class_map] == [(0, "background"), (1, "id")]
    assert [d.id for d in out.detections.detections] in ([], ["id"])  # only visible objects are detections
    assert [d.results[0].hypothesis.class_id for d in out.detections.detections] in ([], ["id"])
    assert [(o.object_id, o.label) for o in out.tracked_objects.objects] == [(1, 1)]
    # Isaac refuses the repeats ("already exists"); here each one re-prompts the same object.
    assert answer(call(isaac_store, core, request)) == (True, ["id"], [1])
    frame(core, 2)
    assert tracker.prompts[1] == ("box", 1, (190.0, 190.0, 210.0, 210.0), [], [])
    assert tracker.object_ids == [1]


def test_isaac_add_object_script_requests(model, isaac_store):
    """scripts/add_object.py: one box object or one point object per call, any string id."""
    core, tracker = make_core(model)
    frame(core, 0)
    assert answer(call(isaac_store, core, isaac_add_objects(isaac_store, [], [], ["obj1"], [(100, 80)], [1]))) == (
        True,
        ["obj1"],
        [1],
    )
    assert answer(call(isaac_store, core, isaac_add_objects(isaac_store, ["bottle"], [(60, 50, 40, 30)]))) == (
        True,
        ["obj1", "bottle"],
        [1, 2],
    )
    out = frame(core, 1)
    assert tracker.prompts == [("points", 1, [(100.0, 80.0)], [1]), ("box", 2, (40.0, 35.0, 80.0, 65.0), [], [])]
    assert [(o.caller_id, o.label) for o in out.objects] == [("obj1", 1), ("bottle", 2)]

    assert answer(call(isaac_store, core, isaac_remove_object(isaac_store, "obj1"))) == (True, ["bottle"], [2])
    again = call(isaac_store, core, isaac_remove_object(isaac_store, "obj1"))
    assert answer(again) == (False, ["bottle"], [2]) and "unknown object id 'obj1'" in again.message
    out = frame(core, 2)
    assert [o.caller_id for o in out.objects] == ["bottle"] and tracker.object_ids == [2]
    # A removed name may come back: it is a new object, with a new tracker id and the free label.
    assert answer(call(isaac_store, core, isaac_add_objects(isaac_store, [], [], ["obj1"], [(10, 10)], [1]))) == (
        True,
        ["bottle", "obj1"],
        [2, 1],
    )
    frame(core, 3)
    assert tracker.prompts[-1] == ("points", 3, [(10.0, 10.0)], [1]) and tracker.object_ids == [2, 3]
    # The decimal tracker id reaches a named object too (tracked_objects publishes tracker ids).
    assert answer(call(isaac_store, core, isaac_remove_object(isaac_store, "2"))) == (True, ["obj1"], [1])


# ------------------------------------------------------------------ where the two nodes differ
def test_mixed_lists_one_object_with_box_and_points(model, isaac_store):
    """An id in both lists: Isaac refuses; here it is one SAM 2 prompt, box plus points (Meta's predictor allows it)."""
    core, tracker = make_core(model)
    frame(core, 0)
    request = isaac_add_objects(
        isaac_store,
        ["cup", "7"],
        [(100, 100, 40, 40), (250, 150, 30, 30)],
        ["cup", "cup", "plate"],
        [(95, 95), (110, 108), (30, 200)],
        [1, 0, 1],
    )
    assert answer(call(isaac_store, core, request)) == (True, ["cup", "plate", "7"], [1, 3, 2])
    frame(core, 1)
    assert tracker.prompts == [
        ("box", 1, (80.0, 80.0, 120.0, 120.0), [(95.0, 95.0), (110.0, 108.0)], [1, 0]),
        ("box", 7, (235.0, 135.0, 265.0, 165.0), [], []),
        ("points", 2, [(30.0, 200.0)], [1]),
    ]  # names take the free ids


def test_points_without_labels_and_more_than_five_points(model, isaac_store):
    """Isaac needs one label per point and at most 5 points per object; here no labels mean foreground, and 6 fit."""
    core, tracker = make_core(model)
    frame(core, 0)
    points = [(20 + 10 * i, 30 + 5 * i) for i in range(6)]
    assert call(isaac_store, core, isaac_add_objects(isaac_store, [], [], ["a"] * 6, points)).success
    frame(core, 1)
    assert tracker.prompts == [("points", 1, [tuple(map(float, p)) for p in points], [1] * 6)]
    bad = call(isaac_store, core, isaac_add_objects(isaac_store, [], [], ["a", "a"], points[:2], [1]))
    assert not bad.success and "2 points but 1 labels" in bad.message  # a wrong count is refused, as by Isaac


def test_refused_requests_change_nothing(model, isaac_store):
    core, tracker = make_core(model, max_objects=2)
    frame(core, 0)
    assert call(isaac_store, core, isaac_add_objects(isaac_store, ["left"], [(50, 50, 20, 20)])).success
    for request, why in [
        (isaac_add_objects(isaac_store, ["b", "c"], [(10, 10, 4, 4), (20, 20, 4, 4)]), "2 new objects but only 1"),
        (isaac_add_objects(isaac_store, ["d", "d"], [(10, 10, 4, 4)] * 2), "object 'd' has more than one box"),
        (isaac_add_objects(isaac_store, [""], [(10, 10, 4, 4)]), "object id is empty"),
        (
            isaac_add_objects(isaac_store, ["1", "left"], [(10, 10, 4, 4), (30, 30, 4, 4)]),
            "object ids '1' and 'left' name the same object (tracker id 1)",
        ),
        (isaac_add_objects(isaac_store, ["far"], [(400, 100, 20, 20)]), "is not inside the 320x240 image"),
    ]:
        reply = call(isaac_store, core, request)
        assert answer(reply) == (False, ["left"], [1]) and why in reply.message, reply.message
    frame(core, 1)
    assert [p[1] for p in tracker.prompts] == [1] and tracker.object_ids == [1]
    # None of the refused names was kept: "b" is new, and gets the next tracker id.
    assert answer(call(isaac_store, core, isaac_add_objects(isaac_store, ["b"], [(10, 10, 4, 4)]))) == (
        True,
        ["left", "b"],
        [1, 2],
    )
    frame(core, 2)
    assert tracker.object_ids == [1, 2]


def test_reset_forgets_names(model, isaac_store):
    core, tracker = make_core(model)
    frame(core, 0)
    call(isaac_store, core, isaac_add_objects(isaac_store, ["car"], [(50, 50, 20, 20)]))
    frame(core, 1)
    core.reset()
    frame(core, 2)
    reply = call(isaac_store, core, isaac_remove_object(isaac_store, "car"))
    assert not reply.success and "unknown object id 'car'" in reply.message


def test_detection_ids_name_objects_across_messages(model):
    """vision_msgs: a Detection2D.id stays the same for the same object, so a detector's track id re-seeds it."""
    core, tracker = make_core(model)
    frame(core, 0)
    objects = [
        m.PublishedObject(0, 1, 0.9, True, (10.0, 10.0, 40.0, 40.0), name="person_7"),
        m.PublishedObject(0, 2, 0.9, True, (100.0, 100.0, 140.0, 150.0), name=""),
    ]
    core.on_detections(roundtrip(m.detection_array_msg(m.header_msg(T0, "camera"), objects)))
    out = frame(core, 1)
    core.on_detections(roundtrip(m.detection_array_msg(m.header_msg(T0 + 1, "camera"), objects[:1])))
    frame(core, 2)
    assert [p[:2] for p in tracker.prompts] == [("box", 1), ("box", 2), ("box", 1)]
    assert [o.caller_id for o in out.objects] == ["person_7", "2"]


# ------------------------------------------------------------------ the registry alone
def test_registry_resolves_names_without_changing_anything():
    registry = ObjectRegistry(capacity=3)
    assert registry.resolve(["a", 2, "b", "a"]) == [1, 2, 3, 1]  # "b" skips 2, the decimal id
    assert registry.snapshot() == [] and registry.known("a") is None
    for obj_id, caller_id in zip([1, 2, 3], ["a", 2, "b"]):
        registry.add(obj_id, caller_id)
    assert registry.named_snapshot() == [("a", 1), ("2", 2), ("b", 3)]
    assert (registry.known("a"), registry.known(1), registry.known("zz"), registry.known(9)) == (1, 1, None, None)
    with pytest.raises(m.PromptError, match="cannot start object 'c'|cannot start object c"):
        registry.add(registry.resolve(["c"])[0], "c")
    registry.remove(1)
    assert registry.known("a") is None and registry.resolve(["a"]) == [4]  # ids are not handed out twice
    assert registry.new_id() == 4
