"""node.py, lifecycle_node.py and the launch file run against recording stand-ins for rclpy and launch_ros.

Why: the nodes are thin, but a slip in them (a table row, a destroy that is never called, a
callback bound to a dropped core) would only show on a ROS 2 machine. These tests run the real
wiring code, a real tracker (random weights, 64 px) and real CDR (rosbags) through a stand-in
that records what the node asks of rclpy, with the signatures rclpy has. What they cannot show
(rclpy's own behaviour, DDS, launch) is tests/test_ros_node.py's, which runs where rclpy exists.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sam2_ros.ros.interfaces.typesys import typestore

OVERRIDES = {"random_weights": True, "image_size": 64, "device": "cpu", "max_objects": 2, "diagnostics_period": 2}


class ParameterException(Exception):
    pass


class InvalidParameterTypeException(ParameterException):
    pass


@dataclass
class ParameterDescriptor:  # rcl_interfaces/msg/ParameterDescriptor's fields, nothing else
    name: str = ""
    type: int = 0
    description: str = ""
    additional_constraints: str = ""
    read_only: bool = False
    dynamic_typing: bool = False
    floating_point_range: list = field(default_factory=list)
    integer_range: list = field(default_factory=list)


@dataclass
class SetParametersResult:
    successful: bool = False
    reason: str = ""


class Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda message, **_: self.lines.append((level, message))


class Entity:
    def __init__(self, kind: str, msg_type: Any, name: str, callback: Any = None, qos: Any = None, **options) -> None:
        self.kind, self.msg_type, self.name, self.callback, self.qos, self.options = (
            kind,
            msg_type,
            name,
            callback,
            qos,
            options,
        )
        self.published: list[bytes] = []

    def publish(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.published.append(data)

    def get_subscription_count(self) -> int:
        return 0


class Node:
    """The parts of rclpy.node.Node the wiring uses; parameter overrides behave as rclpy's on declare."""

    overrides: dict[str, Any] = {}

    def __init__(self, node_name: str, **_) -> None:
        self.node_name, self.params, self.entities, self.destroyed = node_name, {}, [], []
        self.logger = Logger()
        self.context = types.SimpleNamespace(ok=lambda: True)
        self.parameter_callbacks = []

    def declare_parameter(self, name: str, value: Any, descriptor: ParameterDescriptor) -> None:
        assert descriptor.name == name
        given = self.overrides.get(name, value)
        if type(given) is not type(value) and not descriptor.dynamic_typing:
            raise InvalidParameterTypeException(f"Trying to set parameter '{name}' to '{given}'")
        self.params[name] = given

    def get_parameter(self, name: str) -> Any:
        return types.SimpleNamespace(value=self.params[name])

    def add_on_set_parameters_callback(self, callback) -> None:
        self.parameter_callbacks.append(callback)

    def get_logger(self) -> Logger:
        return self.logger

    def get_name(self) -> str:
        return self.node_name

    def get_clock(self):
        return types.SimpleNamespace(now=lambda: types.SimpleNamespace(nanoseconds=time.time_ns()))

    def resolve_topic_name(self, topic: str) -> str:
        return f"/{self.node_name}/{topic[2:]}" if topic.startswith("~/") else f"/{topic}"

    def _create(self, kind: str, *args, **kwargs) -> Entity:
        entity = Entity(kind, *args, **kwargs)
        self.entities.append(entity)
        return entity

    def create_subscription(self, msg_type, topic, callback, qos, *, callback_group=None, raw=False):
        return self._create("subscription", msg_type, topic, callback, qos, raw=raw, group=callback_group)

    def create_publisher(self, msg_type, topic, qos):
        return self._create("publisher", msg_type, topic, None, qos)

    def create_service(self, srv_type, name, callback, *, callback_group=None):
        return self._create("service", srv_type, name, callback, group=callback_group)

    def create_timer(self, period, callback, *, callback_group=None):
        return self._create("timer", None, "", callback, None, period=period)

    def _destroy(self, entity: Entity) -> bool:
        self.entities.remove(entity)
        self.destroyed.append(entity)
        return True

    destroy_subscription = destroy_publisher = destroy_service = destroy_timer = _destroy

    def destroy_node(self) -> None:
        self.node_destroyed = True


class TransitionCallbackReturn(Enum):
    SUCCESS = 1
    FAILURE = 2
    ERROR = 3


def _ros_type(name: str) -> type:
    """What rosidl_runtime_py.utilities.get_message / get_service return: a class per type name."""
    response = type(f"{name}_Response", (), {"__init__": lambda self: None})
    return type(name, (), {"type_name": name, "Response": response})


@pytest.fixture
def ros(monkeypatch):
    """The stand-in modules, and node.py / lifecycle_node.py imported against them."""
    logger = Logger()
    modules = {
        "rclpy": dict(init=lambda args=None: None, try_shutdown=lambda: None),
        "rclpy.node": dict(Node=Node),
        "rclpy.lifecycle": dict(Node=Node, State=object, TransitionCallbackReturn=TransitionCallbackReturn),
        "rclpy.exceptions": dict(ParameterException=ParameterException),
        "rclpy.callback_groups": dict(ReentrantCallbackGroup=object),
        "rclpy.executors": dict(ExternalShutdownException=RuntimeError, MultiThreadedExecutor=object),
        "rclpy.logging": dict(get_logger=lambda name: logger),
        "rclpy.qos": dict(
            QoSProfile=lambda **kw: kw,
            DurabilityPolicy=types.SimpleNamespace(TRANSIENT_LOCAL="tl"),
            HistoryPolicy=types.SimpleNamespace(KEEP_LAST="kl"),
            ReliabilityPolicy=types.SimpleNamespace(BEST_EFFORT="be", RELIABLE="r"),
        ),
        "rclpy.serialization": dict(serialize_message=lambda msg: msg, deserialize_message=lambda data, t: (data, t)),
        "rcl_interfaces": {},
        "rcl_interfaces.msg": dict(ParameterDescriptor=ParameterDescriptor, SetParametersResult=SetParametersResult),
        "rosidl_runtime_py": {},
        "rosidl_runtime_py.utilities": dict(get_message=_ros_type, get_service=_ros_type),
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("sam2_ros.ros.node.node", "sam2_ros.ros.node.lifecycle_node"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(Node, "overrides", dict(OVERRIDES))
    node = importlib.import_module("sam2_ros.ros.node.node")
    lifecycle = importlib.import_module("sam2_ros.ros.node.lifecycle_node")
    yield types.SimpleNamespace(node=node, lifecycle=lifecycle, logger=logger)
    for name in ("sam2_ros.ros.node.node", "sam2_ros.ros.node.lifecycle_node"):
        sys.modules.pop(name, None)


def _by_name(node: Node, kind: str) -> dict[str, Entity]:
    return {e.name: e for e in node.entities if e.kind == kind}


def _image_cdr(height: int = 48, width: int = 64) -> bytes:
    store = typestore()
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=5, nanosec=0), frame_id="camera")
    msg = t["sensor_msgs/msg/Image"](
        header=header,
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=width * 3,
        data=np.zeros(height * width * 3, dtype=np.uint8),
    )
    return bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def _wait(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_plain_node_wires_tables_tracks_and_tears_down(ros):
    node = ros.node.TrackerNode()
    assert node.params["diagnostics_period"] == 2  # an int for a float parameter got through rclpy's declare
    assert node.core.params.diagnostics_period == 2.0
    subscriptions = _by_name(node, "subscription")
    assert set(subscriptions) == {"image", "~/tap", "~/click", "~/seed_detections", "~/prompt"}
    assert all(s.options["raw"] for s in subscriptions.values())
    assert subscriptions["image"].msg_type.type_name == "sensor_msgs/msg/Image"
    assert set(_by_name(node, "service")) == {"~/add_objects", "~/remove_object", "~/reset", "~/enable"}
    publishers = _by_name(node, "publisher")
    assert set(publishers) == {
        "~/label_info",
        "~/label_image",
        "~/detections",
        "~/tracked_objects",
        "~/overlay",
        "/diagnostics",
    }
    assert publishers["~/label_info"].qos["durability"] == "tl"
    store = typestore()
    (latched,) = publishers["~/label_info"].published
    assert store.deserialize_cdr(latched, "vision_msgs/msg/LabelInfo").class_map[0].class_name == "background"

    subscriptions["image"].callback(_image_cdr())  # raw CDR straight to the core
    assert _wait(lambda: publishers["~/label_image"].published)
    labels = store.deserialize_cdr(publishers["~/label_image"].published[-1], "sensor_msgs/msg/Image")
    assert (labels.header.frame_id, labels.height, labels.width, labels.encoding) == ("camera", 48, 64, "mono8")

    reply = _by_name(node, "service")["~/reset"].callback(None, types.SimpleNamespace())
    assert reply.success is True

    bad = []
    node.core.report_bad_message = lambda typename, exc: bad.append((typename, type(exc)))
    subscriptions["~/tap"].callback(b"\x00\x01")  # not a PointStamped: reported, not raised
    assert bad and bad[0][0] == "geometry_msgs/msg/PointStamped"

    (on_set,) = node.parameter_callbacks
    refused = on_set([types.SimpleNamespace(name="model", value="sam2.1_hiera_l")])
    assert refused.successful is False and "read-only" in refused.reason
    assert on_set([types.SimpleNamespace(name="tap_mode", value="add")]).successful
    assert node.core.params.tap_mode == "add"

    created = list(node.entities)
    node.destroy_node()
    assert node.entities == [] and {id(e) for e in node.destroyed} == {id(e) for e in created}
    assert not any(t.name == "sam2_inference" for t in threading.enumerate())


def test_a_mistyped_parameter_is_one_line_and_exit_code_1(ros, monkeypatch):
    monkeypatch.setattr(Node, "overrides", {**OVERRIDES, "diagnostics_period": "fast"})
    assert ros.node.spin(ros.node.TrackerNode) == 1
    ((level, line),) = ros.logger.lines
    assert level == "fatal" and line == "cannot start: parameter 'diagnostics_period' must be a float, got 'fast'"


def test_missing_weights_name_the_node_parameters(ros, monkeypatch, tmp_path):
    from sam2_ros import download

    monkeypatch.setattr(download, "DEFAULT_DIR", tmp_path)
    monkeypatch.setattr(Node, "overrides", {**OVERRIDES, "random_weights": False})
    assert ros.node.spin(ros.node.TrackerNode) == 1
    ((level, line),) = ros.logger.lines
    assert "the parameter `checkpoint`" in line and "--" not in line


def test_lifecycle_transitions_open_close_and_free(ros, monkeypatch):
    ok = TransitionCallbackReturn.SUCCESS
    node = ros.lifecycle.TrackerLifecycleNode()
    assert node.entities == [] and node.core is None  # unconfigured: parameters only

    assert node.on_configure(None) is ok and node.core is not None and node.entities == []
    tracker = node.core.tracker
    for _ in range(2):
        assert node.on_activate(None) is ok
        assert "image" in _by_name(node, "subscription") and "~/label_image" in _by_name(node, "publisher")
        _by_name(node, "subscription")["image"].callback(_image_cdr())
        assert _wait(lambda: _by_name(node, "publisher")["~/label_image"].published)
        assert node.on_deactivate(None) is ok
        assert node.entities == [] and node.core.tracker is tracker  # stopped, still loaded
    assert node.on_cleanup(None) is ok and node.core is None
    assert ("info", "tracker released") in node.logger.lines

    monkeypatch.setitem(node.params, "image_size", 100)  # e.g. set while unconfigured
    assert node.on_configure(None) is TransitionCallbackReturn.FAILURE and node.core is None
    assert node.logger.lines[-1] == (
        "error",
        "cannot configure: parameter 'image_size' must be a multiple of 32, got 100",
    )
    monkeypatch.setitem(node.params, "image_size", 64)
    assert node.on_configure(None) is ok and node.on_activate(None) is ok
    assert node.on_shutdown(None) is ok and node.entities == [] and node.core is None


# ------------------------------------------------------------------ the launch file
class Recorded:
    """A launch / launch_ros action or substitution: keeps its arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context: dict[str, str]) -> str:
        return context[self.args[0]]


@pytest.fixture
def launch_file(monkeypatch):
    """tracker.launch.py loaded against recording stand-ins for launch, launch_ros and lifecycle_msgs."""
    kinds = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "EmitEvent", "OpaqueFunction", "RegisterEventHandler"],
        "launch.conditions": ["IfCondition"],
        "launch.events": [],
        "launch.substitutions": ["PathJoinSubstitution"],
        "launch_ros": [],
        "launch_ros.actions": ["LifecycleNode", "Node"],
        "launch_ros.event_handlers": ["OnStateTransition"],
        "launch_ros.events": [],
        "launch_ros.events.lifecycle": ["ChangeState"],
        "launch_ros.substitutions": ["FindPackageShare"],
        "lifecycle_msgs": [],
        "lifecycle_msgs.msg": [],
    }
    for name, classes in kinds.items():
        module = types.ModuleType(name)
        for cls in classes:
            setattr(module, cls, type(cls, (Recorded,), {}))
        monkeypatch.setitem(sys.modules, name, module)
    sys.modules["launch.events"].matches_action = lambda action: ("matches", action)
    sys.modules["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    sys.modules["lifecycle_msgs.msg"].Transition = types.SimpleNamespace(TRANSITION_CONFIGURE=1, TRANSITION_ACTIVATE=3)
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location(
        "tracker_launch", Path(__file__).resolve().parents[1] / "launch" / "tracker.launch.py"
    )
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    defaults = {
        a.args[0]: a.kwargs["default_value"] for a in description.args[0] if type(a).__name__ == "DeclareLaunchArgument"
    }
    return module, defaults


def test_launch_passes_typed_overrides_to_the_plain_node(launch_file):
    module, defaults = launch_file
    context = {
        **defaults,
        "params_file": "/cfg.yaml",
        "random_weights": "true",
        "image_size": "256",
        "diagnostics_period": "2",
    }
    (node,) = module._tracker(context)
    assert type(node).__name__ == "Node" and node.kwargs["executable"] == "tracker"
    assert node.kwargs["parameters"] == [
        "/cfg.yaml",
        {"random_weights": True, "image_size": 256, "diagnostics_period": 2.0},
    ]
    assert node.kwargs["name"] == "tracker" and node.kwargs["namespace"] == ""


def test_launch_refuses_a_bad_value_naming_the_argument(launch_file):
    module, defaults = launch_file
    with pytest.raises(ValueError) as caught:
        module._tracker({**defaults, "params_file": "/cfg.yaml", "image_size": "abc"})
    assert str(caught.value) == "launch argument image_size:='abc': parameter 'image_size' must be a int, got 'abc'"


def test_launch_lifecycle_autostart_configures_then_activates(launch_file):
    module, defaults = launch_file
    context = {**defaults, "params_file": "/cfg.yaml", "lifecycle": "true", "namespace": "/robot1"}
    node, on_inactive, configure = module._tracker(context)
    assert type(node).__name__ == "LifecycleNode" and node.kwargs["executable"] == "tracker_lifecycle"
    assert node.kwargs["namespace"] == "/robot1"
    assert configure.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node), "transition_id": 1}
    handler = on_inactive.args[0]
    assert handler.kwargs["target_lifecycle_node"] is node and handler.kwargs["goal_state"] == "inactive"
    (activate,) = handler.kwargs["entities"]
    assert activate.kwargs["event"].kwargs["transition_id"] == 3
    (alone,) = module._tracker({**context, "autostart": "false"})
    assert type(alone).__name__ == "LifecycleNode"
    with pytest.raises(ValueError, match="launch argument lifecycle:='yes' must be true or false"):
        module._tracker({**context, "lifecycle": "yes"})


def test_depth_rows_subscribe_publish_and_feed_the_core(ros, monkeypatch):
    """use_depth adds the depth/camera_info subscriptions (topics from parameters) and the 3-D outputs."""
    monkeypatch.setattr(
        Node,
        "overrides",
        {**OVERRIDES, "use_depth": True, "depth_topic": "/cam/aligned_depth", "camera_info_topic": "/cam/info"},
    )
    node = ros.node.TrackerNode()
    subscriptions = _by_name(node, "subscription")
    assert {"/cam/aligned_depth", "/cam/info"} <= set(subscriptions)
    assert subscriptions["/cam/info"].msg_type.type_name == "sensor_msgs/msg/CameraInfo"
    publishers = _by_name(node, "publisher")
    assert {"~/detections_3d", "~/target_point", "~/object_points"} <= set(publishers)

    store = typestore()
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=5, nanosec=0), frame_id="camera")
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = t["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=48,
        width=64,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array([50.0, 0, 32, 0, 50.0, 24, 0, 0, 1]),
        r=np.eye(3).reshape(-1),
        p=np.zeros(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )
    depth = np.full((48, 64), 1000, np.uint16)
    depth_msg = t["sensor_msgs/msg/Image"](
        header=header,
        height=48,
        width=64,
        encoding="16UC1",
        is_bigendian=0,
        step=128,
        data=depth.reshape(-1).view(np.uint8),
    )
    subscriptions["/cam/info"].callback(bytes(store.serialize_cdr(info, "sensor_msgs/msg/CameraInfo")))
    subscriptions["/cam/aligned_depth"].callback(bytes(store.serialize_cdr(depth_msg, "sensor_msgs/msg/Image")))
    subscriptions["image"].callback(_image_cdr())
    assert _wait(lambda: publishers["~/detections_3d"].published)
    boxes = store.deserialize_cdr(publishers["~/detections_3d"].published[-1], "vision_msgs/msg/Detection3DArray")
    assert boxes.header.frame_id == "camera" and boxes.header.stamp.sec == 5
    assert node.core.depth.diagnostics()["depth_paired"] == "1"  # the depth went through the CDR row to the core
    node.destroy_node()
    assert node.entities == []
