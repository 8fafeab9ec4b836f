"""The plain and the managed node on a real ROS 2 (rclpy, DDS, the built interfaces); skipped without rclpy.

``python scripts/ros_stage.py`` runs this file on ROS 2 Jazzy from PyPI (rclpy 7.1.6, Fast DDS),
with vision_msgs built from our definitions and sam2_ros_interfaces built with colcon; skips are
failures there. Each node runs in its own process, started as ``ros2 run`` would (``python -m``
with ``--ros-args``); this process talks to it through topics, services and the ROS graph.
What is checked: every topic, service and parameter of the documented tables on the running node
and with the documented types; the outputs of tracked frames; Isaac-style string ids through the
real ``add_objects`` service; parameters (a whole number for a decimal one, runtime changes,
read-only ones, a mistyped value as one line); the lifecycle walk through the real lifecycle
services; newest-frame-wins under a 30 Hz camera; depth + CameraInfo to the 3-D outputs; the
RIHS01 type hashes of vision_msgs as rosidl generated them from our definitions.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ros_harness import (
    SMOKE,
    STARTUP_S,
    TIMEOUT_S,
    Client,
    NodeProcess,
    assert_clean_exit,
    image_msg,
    require_ros,
    stamp_ns,
    unique_name,
)

REPO = Path(__file__).resolve().parents[1]
#: What rosidl gives upstream vision_msgs 4.1.1 on Jazzy (issue 17); ours must give exactly these.
VISION_MSGS_RIHS01 = {
    "Detection2D": "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "BoundingBox3D": "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "Detection3D": "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "Detection3DArray": "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "ObjectHypothesisWithPose": "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
}


# -------------------------------------------------------- the documented tables (docs/ros.md, docs/parameters.md)
def _doc_rows(page: str, heading: str) -> list[list[str]]:
    """The rows of the first markdown table after the line of ``page`` starting with ``heading``, as cell lists."""
    lines = (REPO / page).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows, seen_table = [], False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            seen_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= set("- ") and cells[0] not in ("", "service", "parameter"):
                rows.append(cells)
        elif seen_table:
            break
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _ros_type(short: str) -> str:
    """``sensor_msgs/Image`` -> ``sensor_msgs/msg/Image``; ``pkg/srv/X`` stays."""
    pkg, *rest = short.split("/")
    return short if len(rest) == 2 else f"{pkg}/msg/{rest[0]}"


def readme_topics() -> list[tuple[str, str, str]]:
    """(direction, topic, type) of the topic table of docs/ros.md, the default transport's type first."""
    return [
        (row[0], _ticked(row[1])[0], _ros_type(_ticked(row[2])[0])) for row in _doc_rows("docs/ros.md", "## Topics")
    ]


def readme_services() -> list[tuple[str, str]]:
    return [(_ticked(row[0])[0], _ros_type(_ticked(row[1])[0])) for row in _doc_rows("docs/ros.md", "## Services")]


def readme_parameters() -> dict[str, str]:
    """name -> type (str, int, float, bool) of docs/parameters.md's table."""
    return {_ticked(row[0])[0]: row[1] for row in _doc_rows("docs/parameters.md", "# Parameters")}


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def rclpy():
    module = require_ros()
    module.init()
    yield module
    module.try_shutdown()


@pytest.fixture(scope="module")
def client(rclpy):
    c = Client(rclpy)
    yield c
    c.close()


@pytest.fixture(scope="module")
def tracker(client):
    """A plain node: an int for the float diagnostics_period, as users write it; the camera and clicks remapped."""
    name = unique_name("tracker")
    proc = NodeProcess(
        name,
        {**SMOKE, "diagnostics_period": 1},
        remap={"image": f"/{name}/camera", "~/click": f"/{name}/clicks"},
    )
    assert proc.wait_for_output("tracking /"), f"node did not start:\n{proc.output()[-3000:]}"
    yield proc
    proc.stop()
    assert_clean_exit(proc, proc.proc.returncode, "stopping the module's node")


def latched():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


# ------------------------------------------------------------------------- tests
def test_readme_tables_are_what_the_node_offers(client, tracker):
    """Every topic, service and parameter of the documented tables, with its type, on the running node."""
    topics, services, params = readme_topics(), readme_services(), readme_parameters()
    assert len(topics) >= 10 and len(services) >= 4 and len(params) >= 20, "docs tables not found"
    name = tracker.name
    expected_subs, expected_pubs = {}, {}
    for direction, topic, type_name in topics:
        resolved = {"image": f"/{name}/camera", "~/click": f"/{name}/clicks"}.get(topic, topic.replace("~", f"/{name}"))
        (expected_subs if direction == "in" else expected_pubs)[resolved] = type_name
    expected_services = {srv.replace("~", f"/{name}"): t for srv, t in services}

    def offered() -> bool:
        subs, pubs, srvs = client.graph(name)
        return (
            all(subs.get(t) == [ty] for t, ty in expected_subs.items())
            and all(pubs.get(t) == [ty] for t, ty in expected_pubs.items())
            and all(srvs.get(s) == [ty] for s, ty in expected_services.items())
        )

    assert client.wait_for(offered), f"docs vs graph: {client.graph(name)}"

    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import DescribeParameters

    reply = client.call(DescribeParameters, f"/{name}/describe_parameters", DescribeParameters.Request(names=[*params]))
    # Declared with dynamic typing (an int is accepted for a float): the type shows in the value.
    assert len(reply.descriptors) == len(params)
    assert all(d.description for d in reply.descriptors), "a parameter without description"
    kinds = {
        ParameterType.PARAMETER_STRING: "str",
        ParameterType.PARAMETER_INTEGER: "int",
        ParameterType.PARAMETER_DOUBLE: "float",
        ParameterType.PARAMETER_BOOL: "bool",
    }
    values = client.get_parameters(name, [*params])
    for (pname, ptype), value in zip(params.items(), values, strict=True):
        if pname == "diagnostics_period":  # started with the whole number 1
            assert value == 1, value
            continue
        assert {str: "str", int: "int", float: "float", bool: "bool"}[type(value)] == ptype, (pname, value)
    assert set(kinds.values()) >= set(params.values())


def test_frames_in_outputs_out(client, tracker):
    """Tracked frames give a label image, detections, tracked objects with the input's header; latched LabelInfo;
    the overlay while someone subscribes; diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sam2_ros_interfaces.msg import TrackedObjectArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray, LabelInfo

    name = tracker.name
    labels = client.subscribe(Image, f"/{name}/label_image")
    detections = client.subscribe(Detection2DArray, f"/{name}/detections")
    objects = client.subscribe(TrackedObjectArray, f"/{name}/tracked_objects")
    diagnostics = client.subscribe(DiagnosticArray, "/diagnostics")
    info = client.subscribe(LabelInfo, f"/{name}/label_info", latched())  # late joiner: latched
    assert client.wait_for(lambda: info), "no latched LabelInfo"
    assert info[-1].class_map[0].class_name == "background"

    camera = client.publisher(Image, f"/{name}/camera")
    sent = image_msg(seed=3, stamp_ns=1_000_000_123)
    assert client.wait_for(lambda: camera.publish(sent) or labels, TIMEOUT_S), "no label image"
    out = labels[-1]
    assert (out.encoding, out.height, out.width) == ("mono8", sent.height, sent.width)
    assert out.header.frame_id == "camera" and stamp_ns(out.header) == 1_000_000_123
    assert client.wait_for(lambda: detections and objects)
    assert detections[-1].header == out.header and objects[-1].header == out.header

    overlay = client.subscribe(Image, f"/{name}/overlay")
    assert client.wait_for(lambda: camera.publish(image_msg(seed=4)) or overlay), "overlay not built for a subscriber"
    assert overlay[-1].encoding == "rgb8"

    def status():
        return [s for a in diagnostics for s in a.status if s.name == f"{name}: tracking"]

    assert client.wait_for(lambda: camera.publish(image_msg(seed=5)) or status(), TIMEOUT_S)
    keys = {kv.key for kv in status()[-1].values}
    assert {"fps", "latency_ms_mean", "inference_ms_mean", "frames_received", "frames_dropped"} <= keys


def test_isaac_style_string_ids_through_the_add_objects_service(client, tracker):
    from geometry_msgs.msg import Point
    from sam2_ros_interfaces.msg import TrackedObjectArray
    from sam2_ros_interfaces.srv import AddObjects, RemoveObject
    from sensor_msgs.msg import Image
    from std_srvs.srv import SetBool, Trigger
    from vision_msgs.msg import BoundingBox2D, Detection2DArray, LabelInfo, Point2D

    name = tracker.name
    camera = client.publisher(Image, f"/{name}/camera")
    detections = client.subscribe(Detection2DArray, f"/{name}/detections")
    objects = client.subscribe(TrackedObjectArray, f"/{name}/tracked_objects")
    info = client.subscribe(LabelInfo, f"/{name}/label_info", latched())
    assert client.call(Trigger, f"/{name}/reset", Trigger.Request()).success
    assert client.wait_for(lambda: camera.publish(image_msg(seed=1)) or objects)

    # Isaac ROS SAM 2's request shapes: a box for "obj1", a point for "obj2".
    box = BoundingBox2D()
    box.center.position.x, box.center.position.y, box.size_x, box.size_y = 64.0, 48.0, 40.0, 30.0
    request = AddObjects.Request(
        bbox_object_ids=["obj1"], bbox_coords=[box], point_object_ids=["obj2"], point_coords=[Point2D(x=20.0, y=20.0)]
    )
    reply = client.call(AddObjects, f"/{name}/add_objects", request)
    assert reply.success, reply.message
    assert list(reply.object_ids) == ["obj1", "obj2"] and list(reply.object_indices) == [1, 2]

    def ids():
        return [o.object_id for o in objects[-1].objects] if objects else []

    assert client.wait_for(lambda: camera.publish(image_msg(seed=2)) or ids() == [1, 2]), ids()
    assert client.wait_for(
        lambda: info and [c.class_name for c in info[-1].class_map] == ["background", "obj1", "obj2"]
    )
    names = {d.id for d in detections[-1].detections}
    assert names <= {"obj1", "obj2"}, names  # visible ones, by the caller's names

    bad = AddObjects.Request(bbox_object_ids=["far"], bbox_coords=[BoundingBox2D()])
    bad.bbox_coords[0].center.position.x = 5000.0
    refused = client.call(AddObjects, f"/{name}/add_objects", bad)
    assert not refused.success and refused.message

    reply = client.call(RemoveObject, f"/{name}/remove_object", RemoveObject.Request(object_id="obj1"))
    assert reply.success and list(reply.object_ids) == ["obj2"], reply.message
    assert not client.call(RemoveObject, f"/{name}/remove_object", RemoveObject.Request(object_id="nope")).success

    # A click (rqt_image_view's Point, remapped) with tap mode replace starts over with object 1.
    client.publisher(Point, f"/{name}/clicks").publish(Point(x=30.0, y=30.0))
    assert client.wait_for(lambda: camera.publish(image_msg(seed=3)) or ids() == [1]), ids()

    # Paused: frames are ignored; resumed: tracked again.
    assert client.call(SetBool, f"/{name}/enable", SetBool.Request(data=False)).success
    time.sleep(1.0)
    count = len(objects)
    for i in range(10):
        camera.publish(image_msg(seed=i))
        time.sleep(0.1)
    assert len(objects) == count, "published while paused"
    assert client.call(SetBool, f"/{name}/enable", SetBool.Request(data=True)).success
    assert client.wait_for(lambda: camera.publish(image_msg(seed=4)) or len(objects) > count)


def test_parameters_at_runtime(client, tracker):
    from sam2_ros_interfaces.msg import TrackedObjectArray
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    name = tracker.name
    assert client.set_parameter(name, "tap_mode", "add").successful
    refused = client.set_parameter(name, "tap_mode", "toggle")
    assert not refused.successful and "tap_mode" in refused.reason
    read_only = client.set_parameter(name, "model", "sam2.1_hiera_l")
    assert not read_only.successful and "model" in read_only.reason
    assert client.get_parameters(name, ["tap_mode", "model"]) == ["add", "sam2.1_hiera_t"]

    # publish_masks at runtime: each tracked object then carries its mono8 mask.
    camera = client.publisher(Image, f"/{name}/camera")
    objects = client.subscribe(TrackedObjectArray, f"/{name}/tracked_objects")
    assert client.call(Trigger, f"/{name}/reset", Trigger.Request()).success
    assert client.set_parameter(name, "publish_masks", True).successful
    from geometry_msgs.msg import Point

    client.publisher(Point, f"/{name}/clicks").publish(Point(x=30.0, y=30.0))
    assert client.wait_for(lambda: camera.publish(image_msg(seed=6)) or (objects and objects[-1].objects))

    def with_masks() -> list:
        # Any message since: on random weights a later frame may lose the object (an empty list).
        return [obj.mask for msg in list(objects) for obj in msg.objects if obj.mask]

    assert client.wait_for(lambda: camera.publish(image_msg(seed=7)) or with_masks())
    mask = with_masks()[-1][0]
    assert mask.encoding == "mono8" and (mask.height, mask.width) == (96, 128)
    assert client.set_parameter(name, "publish_masks", False).successful
    assert client.set_parameter(name, "tap_mode", "replace").successful


def test_published_types_carry_the_upstream_hashes(client, tracker):
    """RIHS01 of every vision_msgs type we build equals upstream 4.1.1's; the live publishers announce them."""
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("vision_msgs")) / "msg"
    for type_name, expected in VISION_MSGS_RIHS01.items():
        doc = json.loads((share / f"{type_name}.json").read_text())
        own = next(h for h in doc["type_hashes"] if h["type_name"] == f"vision_msgs/msg/{type_name}")
        assert own["hash_string"] == expected, type_name
    # The hash DDS discovery carries for the node's Detection2DArray and LabelInfo publishers.
    for topic, type_name in (("detections", "Detection2DArray"), ("label_info", "LabelInfo")):
        infos = client.node.get_publishers_info_by_topic(f"/{tracker.name}/{topic}")
        assert infos, topic
        assert str(infos[0].topic_type_hash) == VISION_MSGS_RIHS01[type_name], (topic, infos[0])


def test_the_hash_check_fails_on_another_definition():
    """The hashes above are rosidl's (recomputed here from the type descriptions), and a changed definition
    (two fields swapped) would not match them."""
    require_ros()
    from ament_index_python.packages import get_package_share_directory
    from rosidl_generator_type_description import calculate_type_hash

    share = Path(get_package_share_directory("vision_msgs")) / "msg"
    for type_name, expected in VISION_MSGS_RIHS01.items():
        description = json.loads((share / f"{type_name}.json").read_text())["type_description_msg"]
        assert calculate_type_hash(description) == expected, type_name
        fields = description["type_description"]["fields"]
        fields[-1], fields[-2] = fields[-2], fields[-1]
        assert calculate_type_hash(description) != expected, type_name


def test_mistyped_parameter_is_one_line_naming_it():
    require_ros()
    proc = NodeProcess(unique_name("typo"), {**SMOKE, "image_size": "abc"})
    code = proc.wait(STARTUP_S)
    out = proc.output().strip().splitlines()
    proc.stop()
    assert code == 1, out
    assert len(out) == 1 and "image_size" in out[0] and "Traceback" not in out[0], out


def test_missing_weights_name_the_node_parameters():
    require_ros()
    proc = NodeProcess(
        unique_name("noweights"), {"device": "cpu", "image_size": 128, "checkpoint": "/nonexistent/w.pt"}
    )
    code = proc.wait(STARTUP_S)
    out = proc.output().strip().splitlines()
    proc.stop()
    assert code == 1 and len(out) == 1, out
    assert "checkpoint" in out[0], out


def test_lifecycle_walk_through_the_real_lifecycle_services(client):
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.msg import Image

    name = unique_name("managed")
    proc = NodeProcess(name, {**SMOKE, "diagnostics_period": 1}, lifecycle=True, remap={"image": f"/{name}/camera"})
    try:
        labels = client.subscribe(Image, f"/{name}/label_image")
        camera = client.publisher(Image, f"/{name}/camera")

        def state() -> int:
            return client.call(GetState, f"/{name}/get_state", GetState.Request(), STARTUP_S).current_state.id

        def transition(tid: int, timeout: float = TIMEOUT_S) -> None:
            request = ChangeState.Request()
            request.transition.id = tid
            assert client.call(ChangeState, f"/{name}/change_state", request, timeout).success, tid

        def serving() -> bool:
            _, pubs, srvs = client.graph(name)
            return f"/{name}/label_image" in pubs and f"/{name}/add_objects" in srvs

        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not serving()
        transition(Transition.TRANSITION_CONFIGURE, STARTUP_S)  # loads the model
        assert state() == State.PRIMARY_STATE_INACTIVE
        time.sleep(0.5)
        assert not serving(), "an inactive node must not publish or serve"
        for _ in range(2):  # activating again reuses the loaded tracker
            transition(Transition.TRANSITION_ACTIVATE)
            assert state() == State.PRIMARY_STATE_ACTIVE
            assert client.wait_for(serving)
            count = len(labels)
            assert client.wait_for(lambda n=count: camera.publish(image_msg()) or len(labels) > n), "not tracking"
            transition(Transition.TRANSITION_DEACTIVATE)
            assert state() == State.PRIMARY_STATE_INACTIVE
            assert client.wait_for(lambda: not serving()), "topics and services stayed on deactivate"
            time.sleep(0.5)
            count = len(labels)
            for _ in range(5):
                camera.publish(image_msg())
                time.sleep(0.1)
            assert len(labels) == count, "tracked while inactive"
        transition(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        assert proc.wait_for_output("tracker released", TIMEOUT_S)
        transition(Transition.TRANSITION_CONFIGURE, STARTUP_S)  # and loads again
        assert state() == State.PRIMARY_STATE_INACTIVE
    finally:
        proc.stop()
    assert_clean_exit(proc, proc.proc.returncode, "stopping the managed node")


def test_a_plain_install_segments_an_image(data_dir, tmp_path):
    """In the stage this process is a venv with ``pip install -e .`` and nothing more: ``sam2-ros segment``
    reads and segments a real image there (Pillow, which decodes it, was missing from install_requires)."""
    out = tmp_path / "seg"
    argv = ["segment", str(data_dir / "images" / "cars.jpg"), "--point", "1:40,40", "--random-weights"]
    code = "import sys; from sam2_ros.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, *argv, "--image-size", "64", "--device", "cpu", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert [len(image["objects"]) for image in results["images"]] == [1]
    assert (out / "labels" / "cars.png").is_file()


def _trend(values: list[float]) -> float:
    """The Theil-Sen slope (median of all pairwise slopes) of ``values`` per index: one outlier moves it little."""
    pairs = [(values[j] - values[i]) / (j - i) for i in range(len(values)) for j in range(i + 1, len(values))]
    return float(np.median(pairs))


def test_trend_is_robust_to_one_late_output_and_sees_a_queue():
    """The latency test's judge: a flat series with one spike is flat; a queue's steady growth is not."""
    flat = [1.0, 1.2, 0.9, 1.1, 4.3, 1.0, 1.15, 0.95, 1.05, 1.1]
    queued = [1.0 + 0.86 * i for i in range(10)]
    assert abs(_trend(flat)) < 0.05
    assert _trend(queued) > 0.8


def test_newest_frame_wins_under_a_30hz_camera(client):
    """Inference slower than the camera: frames are dropped, not queued, so latency stays flat."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    name = unique_name("slow")
    proc = NodeProcess(name, {**SMOKE, "image_size": 512}, remap={"image": f"/{name}/camera"})
    try:
        assert proc.wait_for_output("tracking /"), proc.output()[-2000:]
        labels = client.subscribe(Image, f"/{name}/label_image", stamped=True)
        diagnostics = client.subscribe(DiagnosticArray, "/diagnostics")
        sent = client.stream(f"/{name}/camera", 30.0, lambda i: image_msg(width=320, height=240, seed=i % 4))
        assert client.wait_for(lambda: len(labels) >= 12, 120.0), f"{len(labels)} outputs"
        client.stop_streams()
        duration_s = (sent[-1] - sent[0]) / 1e9
        latency = [(received - stamp_ns(m.header)) / 1e9 for received, m in labels]
        step = float(np.median(np.diff([r for r, _ in labels]))) / 1e9
        assert step > 1 / 30, f"inference ({step:.3f} s) is not slower than the camera: nothing to drop"
        assert len(labels) < 0.8 * len(sent), (len(labels), len(sent))  # frames were dropped
        # Queued frames would add about one step of latency per output (a trend); dropped ones keep it
        # within two steps (waiting for the running step, then its own). Both judged robustly: one late
        # output when a loaded 2-core machine starves the node for a moment is neither.
        growth = _trend(latency[2:])
        assert growth < 0.25 * step, f"latency grows {growth:.2f} s per output over {duration_s:.0f} s: {latency}"
        assert np.median(latency[2:]) < 2 * step + 0.5, latency

        def dropped() -> int:
            values = [
                int(kv.value)
                for a in diagnostics
                for s in a.status
                if s.name == f"{name}: tracking"
                for kv in s.values
                if kv.key == "frames_dropped"
            ]
            return max(values, default=0)

        assert client.wait_for(lambda: dropped() > 0, 10.0), "diagnostics count no dropped frame"
    finally:
        proc.stop()
    assert_clean_exit(proc, proc.proc.returncode, "stopping the slow node")


def test_depth_and_camera_info_in_3d_outputs_out(client):
    from geometry_msgs.msg import PointStamped
    from sam2_ros_interfaces.srv import AddObjects
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from vision_msgs.msg import BoundingBox2D, Detection3DArray

    name = unique_name("depth")
    proc = NodeProcess(
        name,
        {**SMOKE, "use_depth": True, "depth_topic": f"/{name}/depth", "camera_info_topic": f"/{name}/camera_info"},
        remap={"image": f"/{name}/camera"},
    )
    try:
        assert proc.wait_for_output("tracking /"), proc.output()[-2000:]
        dets = client.subscribe(Detection3DArray, f"/{name}/detections_3d")
        target = client.subscribe(PointStamped, f"/{name}/target_point")
        cloud = client.subscribe(PointCloud2, f"/{name}/object_points")
        camera = client.publisher(Image, f"/{name}/camera")
        depth_pub = client.publisher(Image, f"/{name}/depth")
        info_pub = client.publisher(CameraInfo, f"/{name}/camera_info")
        width, height = 128, 96
        info = CameraInfo(width=width, height=height)
        info.k = [100.0, 0.0, 64.0, 0.0, 100.0, 48.0, 0.0, 0.0, 1.0]
        info.header.frame_id = "camera"

        def frame(i: int) -> None:
            color = image_msg(width, height, seed=i)
            depth = Image(header=color.header, height=height, width=width, encoding="16UC1", step=width * 2)
            depth.data = np.full((height, width), 1500, np.uint16).tobytes()  # a wall 1.5 m away
            info.header.stamp = color.header.stamp
            info_pub.publish(info)
            depth_pub.publish(depth)
            time.sleep(0.01)
            camera.publish(color)

        frame(0)
        box = BoundingBox2D()
        box.center.position.x, box.center.position.y, box.size_x, box.size_y = 64.0, 48.0, 60.0, 40.0
        reply = client.call(
            AddObjects, f"/{name}/add_objects", AddObjects.Request(bbox_object_ids=["1"], bbox_coords=[box])
        )
        assert reply.success, reply.message
        i = iter(range(1, 10_000))
        assert client.wait_for(lambda: frame(next(i)) or (dets and target and cloud), 60.0), (
            len(dets),
            len(target),
            len(cloud),
            proc.output()[-2000:],
        )
        assert dets[-1].header.frame_id == "camera" and target[-1].header.frame_id == "camera"
        assert cloud[-1].width * cloud[-1].height > 0
        if dets[-1].detections:  # random weights: the mask may be empty; when not, it lies on the wall
            assert abs(dets[-1].detections[0].bbox.center.position.z - 1.5) < 0.05
    finally:
        proc.stop()
    assert_clean_exit(proc, proc.proc.returncode, "stopping the depth node")
