"""The rclpy node ``tracker``, and the wiring it shares with the managed node ``tracker_lifecycle``.

Why so thin: rclpy cannot be installed where CI runs, so this module decides nothing. Topics are
subscribed raw (CDR bytes); images go to the core as bytes and are deserialized (by rosbags) only
when tracked, the other inputs are deserialized by rosbags at once. The core's outputs are
rosbags messages, serialized by rosbags and published as bytes; services convert through
``rclpy.serialization``. The code behind this shell is therefore exactly what
tests/test_ros_core.py and the bag replay run.

The wiring is table-driven (``INPUTS``, ``OUTPUT_QOS``, ``SERVICES``) and names ROS types only as
strings, resolved by importing the generated module (``ros_type``; no ``rosidl_runtime_py``, which a
minimal rclpy install lacks): a new input or output is one row. ``TrackerWiring``
has the steps a managed node takes one transition at a time (load, start, stop, unload); the
plain ``TrackerNode`` takes them all at once (lifecycle_node.py has the managed one).

Stopping (``spin``): rclpy's own signal handlers are not installed. They shut the context down
from a signal thread while the inference thread may still publish (an ERROR on a context that is
no longer valid), and a KeyboardInterrupt could land anywhere, e.g. inside the join of that
thread (a traceback). SIGINT and SIGTERM only set a flag here (stop_request.py: a plain attribute,
since a handler that takes a lock can deadlock on itself); the main thread then stops and
fully joins the inference thread (at most one inference step), destroys the node and shuts the
context down last. A second signal (a terminal's Ctrl+C reaches the node and ``ros2 launch``,
which forwards it again) changes nothing. tests/test_ros_stop.py checks it on a real ROS 2.

Needs rclpy and the built sam2_ros_interfaces; import it only through the ``tracker`` and
``tracker_lifecycle`` entry points.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions

from sam2_ros.errors import UserError
from sam2_ros.ros.interfaces.messages import header_msg
from sam2_ros.ros.interfaces.messages3d import DEPTH_OUTPUT_TYPES, OBJECT_POINTS
from sam2_ros.ros.interfaces.typesys import typestore
from sam2_ros.ros.node.core import LABEL_INFO, OUTPUT_TYPES, OVERLAY, TrackerCore, build_tracker
from sam2_ros.ros.node.params import NODE_NAME, TrackerParams, parameter_specs, spec
from sam2_ros.ros.node.stop_request import StopRequest


@dataclass(frozen=True)
class Input:
    """A subscription feeding the ``TrackerCore`` method ``handler``."""

    type_name: str
    topic: str
    handler: str
    qos: str = "input"
    cdr: bool = False  # the handler takes the CDR bytes itself (images: decoded only when tracked)
    transport: str = ""  # subscribed only with this image_transport parameter
    suffix: str = ""  # appended to the resolved (remapped) topic, as image_transport names its topics
    topic_param: str = ""  # the topic is this parameter's value instead of ``topic``
    enabled_by: str = ""  # subscribed only while this bool parameter is true


@dataclass(frozen=True)
class ServiceRow:
    """A service answered by the ``TrackerCore`` method ``handler``.

    ``call``: ``cdr`` hands the handler the rosbags request and answers its rosbags reply;
    ``none`` / ``data`` call it without arguments / with ``request.data`` and answer its
    success and message (std_srvs types, which the rosbags store lacks).
    """

    type_name: str
    name: str
    handler: str
    call: str = "cdr"


INPUTS = (
    Input("sensor_msgs/msg/Image", "image", "on_image", qos="image", cdr=True, transport="raw"),
    Input(
        "sensor_msgs/msg/CompressedImage",
        "image",
        "on_image",
        qos="image",
        cdr=True,
        transport="compressed",
        suffix="/compressed",
    ),
    Input("geometry_msgs/msg/PointStamped", "~/tap", "on_point_stamped"),
    Input("geometry_msgs/msg/Point", "~/click", "on_point"),
    Input("vision_msgs/msg/Detection2DArray", "~/seed_detections", "on_detections"),
    Input("sam2_ros_interfaces/msg/ObjectPrompt", "~/prompt", "on_prompt"),
    Input(
        "sensor_msgs/msg/Image",
        "",
        "on_depth",
        qos="sensor",
        cdr=True,
        topic_param="depth_topic",
        enabled_by="use_depth",
    ),
    Input(
        "sensor_msgs/msg/CameraInfo",
        "",
        "on_camera_info",
        qos="sensor",
        cdr=True,
        topic_param="camera_info_topic",
        enabled_by="use_depth",
    ),
)
SERVICES = (
    ServiceRow("sam2_ros_interfaces/srv/AddObjects", "~/add_objects", "add_objects"),
    ServiceRow("sam2_ros_interfaces/srv/RemoveObject", "~/remove_object", "remove_object"),
    ServiceRow("std_srvs/srv/Trigger", "~/reset", "reset", call="none"),
    ServiceRow("std_srvs/srv/SetBool", "~/enable", "enable", call="data"),
)
#: The core's outputs (core.OUTPUT_TYPES: topic -> type) go to ``~/<topic>`` with this QoS, by default "output".
OUTPUT_QOS = {LABEL_INFO: "latched"}
DIAGNOSTICS = ("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics")
QOS = {
    "input": QoSProfile(depth=10),
    "output": QoSProfile(depth=5),
    # Only the newest frame matters: depth 1, and best effort accepts reliable and best-effort cameras.
    "image": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
    # Depth and camera info: a few in flight, paired with colour frames by stamp in the core's bounded buffer.
    "sensor": QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
    # LabelInfo is latched: late subscribers get the current label -> id map.
    "latched": QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    ),
}
#: How long the inference thread waits for a frame before looking at the stop flag again.
STEP_TIMEOUT_S = 0.1
#: How often the main thread looks at the stop flag while spinning.
SPIN_PERIOD_S = 0.1
#: The signals that stop the node cleanly (Ctrl+C, and what launch, systemd and docker send).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ros_type(name: str) -> Any:
    """The message or service class of ``pkg/msg/Name`` or ``pkg/srv/Name``, from its generated Python module."""
    package, kind, cls = name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), cls)


#: What a node that cannot start raises: bad parameters, missing weights (CheckpointError is a RuntimeError).
STARTUP_ERRORS = (UserError, FileNotFoundError, ValueError, KeyError, RuntimeError, ParameterException)


class TrackerWiring:
    """Parameters, tracker, topics, services and the inference thread of an rclpy node (mixed into one).

    The steps, in order: ``declare_tracker_parameters`` (construction), ``load_tracker`` (model,
    engines, memory bank), ``start_tracking`` (subscribe, publish, serve, infer), ``stop_tracking``
    (undo the start; the tracker stays loaded), ``unload_tracker`` (free its memory).
    """

    core: TrackerCore | None

    def declare_tracker_parameters(self) -> None:
        """Declare every parameter with its description; values are checked by params.py when loading."""
        self.core = None
        self._cdr = typestore()
        self._group = ReentrantCallbackGroup()  # every callback is short and thread-safe: none waits for another
        self._entities: list[tuple[Callable[[Any], Any], Any]] = []  # (destroy, entity) of the started node
        self._out_pubs: dict[str, Any] = {}
        self._inference_on = threading.Event()
        self._inference_thread: threading.Thread | None = None
        for p in parameter_specs():
            self.declare_parameter(p.name, p.default, ParameterDescriptor(**p.descriptor()))
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def load_tracker(self) -> TrackerParams:
        """Build the tracker the parameters describe; ValueError naming the parameter if one is wrong."""
        params = TrackerParams.from_dict({p.name: self.get_parameter(p.name).value for p in parameter_specs()})
        self.core = TrackerCore(build_tracker(params, node=True), params, self.get_logger())
        if params.random_weights:
            self.get_logger().warning("random_weights: the model is UNTRAINED; its masks are meaningless")
        return params

    def start_tracking(self) -> None:
        """Subscribe, advertise the outputs and services, publish LabelInfo and start inferring."""
        params = self.core.params
        for row in INPUTS:
            if (row.transport and row.transport != params.image_transport) or (
                row.enabled_by and not getattr(params, row.enabled_by)
            ):
                continue
            topic = getattr(params, row.topic_param) if row.topic_param else row.topic
            topic = self.resolve_topic_name(topic) + row.suffix if row.suffix else topic
            callback = self._handler(row.handler) if row.cdr else self._deserialized(row.type_name, row.handler)
            self._keep(
                self.destroy_subscription,
                self.create_subscription(
                    ros_type(row.type_name), topic, callback, QOS[row.qos], callback_group=self._group, raw=True
                ),
            )
        for row in SERVICES:
            srv_type = ros_type(row.type_name)
            self._keep(
                self.destroy_service,
                self.create_service(srv_type, row.name, self._answer(srv_type, row), callback_group=self._group),
            )
        for topic, type_name in {**OUTPUT_TYPES, **(DEPTH_OUTPUT_TYPES if params.use_depth else {})}.items():
            self._out_pubs[topic] = self._keep(
                self.destroy_publisher,
                self.create_publisher(ros_type(type_name), f"~/{topic}", QOS[OUTPUT_QOS.get(topic, "output")]),
            )
        self._diag_pub = self._keep(
            self.destroy_publisher, self.create_publisher(ros_type(DIAGNOSTICS[0]), DIAGNOSTICS[1], QOS["input"])
        )
        self._keep(
            self.destroy_timer,
            self.create_timer(params.diagnostics_period, self._publish_diagnostics, callback_group=self._group),
        )
        self._publish(LABEL_INFO, self.core.label_info(self._header()))
        self._inference_on.set()
        self._inference_thread = threading.Thread(target=self._inference_loop, name="sam2_inference", daemon=True)
        self._inference_thread.start()
        self.get_logger().info(
            f"tracking {self.resolve_topic_name('image')} ({params.image_transport}) with the "
            f"{params.backend} backend on {self.core.tracker.device}; tap mode {params.tap_mode}"
        )

    def stop_tracking(self) -> None:
        """Stop inferring, drop the subscriptions, publishers, services and timer; the tracker stays loaded.

        The inference thread is joined without a timeout: it looks at the flag between steps, so this
        takes at most one inference step, and nothing it publishes can outlive the publishers.
        """
        self._inference_on.clear()
        if self._inference_thread is not None:
            self._inference_thread.join()
            self._inference_thread = None
        while self._entities:
            destroy, entity = self._entities.pop()
            destroy(entity)
        self._out_pubs.clear()

    def unload_tracker(self) -> None:
        """Drop the tracker (model, engines, memory bank) and hand its GPU memory back to the driver."""
        if self.core is None:
            return
        device = str(self.core.tracker.device)
        self.core = None
        gc.collect()
        if device.startswith("cuda"):
            import torch  # noqa: PLC0415 - only to release CUDA memory; torch is loaded by then

            torch.cuda.empty_cache()
            self.get_logger().info(
                f"tracker released; {torch.cuda.memory_allocated() / 2**20:.0f} MiB of CUDA "
                f"memory still allocated by this process"
            )
        else:
            self.get_logger().info("tracker released")

    # --------------------------------------------------------------- plumbing
    def _keep(self, destroy: Callable[[Any], Any], entity: Any) -> Any:
        self._entities.append((destroy, entity))
        return entity

    def _inference_loop(self) -> None:
        """Runs ``core.step`` back to back; the overlay and the point cloud are built only while someone subscribes."""
        core, overlay, cloud = self.core, self._out_pubs[OVERLAY], self._out_pubs.get(OBJECT_POINTS)
        while self._inference_on.is_set() and self.context.ok():
            try:
                outputs = core.step(
                    overlay=overlay.get_subscription_count() > 0,
                    timeout=STEP_TIMEOUT_S,
                    cloud=cloud is not None and cloud.get_subscription_count() > 0,
                )
                for topic, msg in outputs.messages() if outputs is not None else []:
                    self._publish(topic, msg)
            except Exception as exc:  # noqa: BLE001 - keep serving; the cause is logged and shows in diagnostics
                self.get_logger().error(f"inference step failed: {exc!r}", throttle_duration_sec=5.0)

    def _publish(self, topic: str, msg: Any) -> None:
        publisher = self._out_pubs.get(topic)
        if publisher is not None:  # None: stopped while this frame was in flight
            publisher.publish(bytes(self._cdr.serialize_cdr(msg, msg.__msgtype__)))

    def _publish_diagnostics(self) -> None:
        msg = self.core.diagnostics(self._header(), f"{self.get_name()}: tracking")
        self._diag_pub.publish(bytes(self._cdr.serialize_cdr(msg, msg.__msgtype__)))

    def _header(self) -> Any:
        return header_msg(self.get_clock().now().nanoseconds, "")

    def _handler(self, name: str) -> Callable[[Any], Any]:
        """The current core's method ``name`` (looked up per call: nothing outlives an unloaded core)."""
        return lambda msg: getattr(self.core, name)(msg)

    def _deserialized(self, typename: str, handler: str) -> Callable[[bytes], None]:
        """A raw-subscription callback handing the core's ``handler`` the rosbags message of the CDR bytes."""

        def callback(raw: bytes) -> None:
            try:
                msg = self._cdr.deserialize_cdr(raw, typename)
            except Exception as exc:  # noqa: BLE001 - a definition mismatch must not stop the executor
                self.core.report_bad_message(typename, exc)
                return
            getattr(self.core, handler)(msg)

        return callback

    def _answer(self, srv_type: Any, row: ServiceRow) -> Callable[[Any, Any], Any]:
        """A service callback running the core's ``row.handler`` on the request, answering ``srv_type``'s response."""

        def callback(request: Any, response: Any) -> Any:
            handler = getattr(self.core, row.handler)
            if row.call == "cdr":
                reply = handler(self._cdr.deserialize_cdr(serialize_message(request), f"{row.type_name}_Request"))
                return deserialize_message(bytes(self._cdr.serialize_cdr(reply, reply.__msgtype__)), srv_type.Response)
            result = handler(request.data) if row.call == "data" else handler()
            response.success, response.message = result.success, result.message
            return response

        return callback

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        """Check every change first, then apply: a refused batch changes nothing. Foreign names pass through."""
        ours = [p for p in parameters if p.name in {s.name for s in parameter_specs()}]
        try:
            for p in ours:
                if not spec(p.name).dynamic:
                    raise ValueError(f"parameter {p.name!r} is read-only; set it at startup")
                spec(p.name).check(p.value)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if self.core is not None:  # a managed node not configured yet reads them when it loads
            for p in ours:
                self.core.set_param(p.name, p.value)
        return SetParametersResult(successful=True)


class TrackerNode(TrackerWiring, Node):
    """The plain node: loads the tracker and starts tracking as it is constructed."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.declare_tracker_parameters()
        self.load_tracker()
        self.start_tracking()

    def destroy_node(self) -> None:
        self.stop_tracking()
        super().destroy_node()


def spin(make_node: Callable[[], Node], args: list[str] | None = None, *, exit_process: bool = False) -> int:
    """Run the node ``make_node`` builds until SIGINT / SIGTERM or shutdown; exit code 1, with one line, when it
    cannot start. A stop joins the inference thread before the context goes (module docstring).

    After a stop, SIGINT and SIGTERM are ignored: the process is exiting, and a second Ctrl+C (launch
    forwards the terminal's) must neither raise KeyboardInterrupt in the interpreter's exit handlers
    nor, once Python has restored the default handlers while finalizing, kill it (exit code -2).
    ``exit_process`` (the entry points): end the process with code 0 right after a clean stop. By then
    the context and ROS logging are shut down and nothing is left to flush but stdout/stderr, while the
    interpreter's finalization of torch takes 1 to 2 s more on a loaded machine.
    """
    stop = StopRequest()
    previous = stop.install(STOP_SIGNALS)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = make_node()
    except STARTUP_ERRORS as exc:
        get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        return 1
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass
    finally:
        node.stop_tracking()  # joins the inference thread while the context is valid
        executor.shutdown()  # waits for callbacks in flight
        node.destroy_node()
        rclpy.try_shutdown()
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    if exit_process:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def main(args: list[str] | None = None) -> int:
    """``ros2 run sam2_ros tracker``."""
    return spin(TrackerNode, args, exit_process=True)


if __name__ == "__main__":
    sys.exit(main())
