"""The rclpy node ``tracker``: a thin shell that moves CDR bytes between ROS 2 and ``TrackerCore``.

Why so thin: rclpy cannot be installed where CI runs, so this module decides nothing. Topics are
subscribed raw (CDR bytes); images go to the core as bytes and are deserialized (by rosbags) only
when tracked, the other inputs are deserialized by rosbags at once. The core's outputs are
rosbags messages, serialized by rosbags and published as bytes; services convert through
``rclpy.serialization``. The code behind this shell is therefore exactly what
tests/test_ros_core.py and the bag replay run.

Needs rclpy and the built sam2_ros_interfaces; import it only through the ``tracker`` entry point.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from sam2_ros_interfaces.msg import ObjectPrompt, TrackedObjectArray
from sam2_ros_interfaces.srv import AddObjects, RemoveObject
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool, Trigger
from vision_msgs.msg import Detection2DArray, LabelInfo

from sam2_ros.ros.core import (
    DETECTIONS,
    LABEL_IMAGE,
    LABEL_INFO,
    OVERLAY,
    TRACKED_OBJECTS,
    TrackerCore,
    build_tracker,
)
from sam2_ros.ros.messages import header_msg
from sam2_ros.ros.params import NODE_NAME, TrackerParams, parameter_specs, spec
from sam2_ros.ros.typesys import ADD_OBJECTS_REQUEST, OBJECT_PROMPT, REMOVE_OBJECT_REQUEST, typestore

#: rclpy types of the core's outputs (published as bytes; the type fixes the topic's type).
OUTPUT_RCLPY_TYPES = {LABEL_INFO: LabelInfo, LABEL_IMAGE: Image, DETECTIONS: Detection2DArray,
                      TRACKED_OBJECTS: TrackedObjectArray, OVERLAY: Image}
#: Only the newest frame matters: depth 1, and best effort accepts reliable and best-effort cameras.
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
#: LabelInfo is latched: late subscribers get the current label -> id map.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: How long the inference thread waits for a frame before looking at the shutdown flag again.
STEP_TIMEOUT_S = 0.1


class TrackerNode(Node):
    """Declares the parameters, builds the tracker, wires topics and services to a ``TrackerCore``."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self._cdr = typestore()
        for p in parameter_specs():
            self.declare_parameter(p.name, p.default, ParameterDescriptor(
                description=p.description, additional_constraints=p.constraints, read_only=not p.dynamic))
        params = TrackerParams.from_dict({p.name: self.get_parameter(p.name).value for p in parameter_specs()})
        self.core = TrackerCore(build_tracker(params), params, self.get_logger())
        self.add_on_set_parameters_callback(self._on_set_parameters)

        group = ReentrantCallbackGroup()  # every callback is short and thread-safe: none waits for another
        if params.image_transport == "compressed":
            self.create_subscription(CompressedImage, self.resolve_topic_name("image") + "/compressed",
                                     self.core.on_image, IMAGE_QOS, callback_group=group, raw=True)
        else:
            self.create_subscription(Image, "image", self.core.on_image, IMAGE_QOS, callback_group=group, raw=True)
        for rclpy_type, topic, typename, handler in [
            (PointStamped, "~/tap", "geometry_msgs/msg/PointStamped", self.core.on_point_stamped),
            (Point, "~/click", "geometry_msgs/msg/Point", self.core.on_point),
            (Detection2DArray, "~/seed_detections", "vision_msgs/msg/Detection2DArray", self.core.on_detections),
            (ObjectPrompt, "~/prompt", OBJECT_PROMPT, self.core.on_prompt),
        ]:
            self.create_subscription(rclpy_type, topic, self._deserialized(typename, handler), 10,
                                     callback_group=group, raw=True)

        self.create_service(AddObjects, "~/add_objects",
                            self._converted(AddObjects, ADD_OBJECTS_REQUEST, self.core.add_objects),
                            callback_group=group)
        self.create_service(RemoveObject, "~/remove_object",
                            self._converted(RemoveObject, REMOVE_OBJECT_REQUEST, self.core.remove_object),
                            callback_group=group)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=group)
        self.create_service(SetBool, "~/enable", self._on_enable, callback_group=group)

        self._out_pubs = {topic: self.create_publisher(rclpy_type, f"~/{topic}",
                                                         LATCHED_QOS if topic == LABEL_INFO else 5)
                            for topic, rclpy_type in OUTPUT_RCLPY_TYPES.items()}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(params.diagnostics_period, self._publish_diagnostics, callback_group=group)
        self._publish(LABEL_INFO, self.core.label_info(self._header()))

        self._inference_on = threading.Event()
        self._inference_on.set()
        self._inference_thread = threading.Thread(target=self._inference_loop, name="sam2_inference", daemon=True)
        self._inference_thread.start()
        self.get_logger().info(f"tracking {self.resolve_topic_name('image')} ({params.image_transport}) with the "
                               f"{params.backend} backend on {self.core.tracker.device}; tap mode {params.tap_mode}")
        if params.random_weights:
            self.get_logger().warning("random_weights: the model is UNTRAINED; its masks are meaningless")

    def destroy_node(self) -> None:
        self._inference_on.clear()
        self._inference_thread.join(timeout=5.0)
        super().destroy_node()

    # --------------------------------------------------------------- plumbing
    def _inference_loop(self) -> None:
        """Runs ``core.step`` back to back; the overlay is drawn only while someone subscribes to it."""
        while self._inference_on.is_set() and self.context.ok():
            try:
                outputs = self.core.step(overlay=self._out_pubs[OVERLAY].get_subscription_count() > 0,
                                         timeout=STEP_TIMEOUT_S)
                for topic, msg in outputs.messages() if outputs is not None else []:
                    self._publish(topic, msg)
            except Exception as exc:  # noqa: BLE001 - keep serving; the cause is logged and shows in diagnostics
                self.get_logger().error(f"inference step failed: {exc!r}", throttle_duration_sec=5.0)

    def _publish(self, topic: str, msg: Any) -> None:
        self._out_pubs[topic].publish(bytes(self._cdr.serialize_cdr(msg, msg.__msgtype__)))

    def _publish_diagnostics(self) -> None:
        msg = self.core.diagnostics(self._header(), f"{self.get_name()}: tracking")
        self._diag_pub.publish(bytes(self._cdr.serialize_cdr(msg, msg.__msgtype__)))

    def _header(self) -> Any:
        return header_msg(self.get_clock().now().nanoseconds, "")

    def _deserialized(self, typename: str, handler: Callable[[Any], None]) -> Callable[[bytes], None]:
        """A raw-subscription callback handing ``handler`` the rosbags message of the CDR bytes."""
        def callback(raw: bytes) -> None:
            try:
                msg = self._cdr.deserialize_cdr(raw, typename)
            except Exception as exc:  # noqa: BLE001 - a definition mismatch must not stop the executor
                self.get_logger().error(f"cannot read {typename}: {exc!r}", throttle_duration_sec=5.0)
                return
            handler(msg)
        return callback

    def _converted(self, srv_type: Any, request_type: str, handler: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        """A service callback running ``handler`` on the rosbags form of the request, answering its rclpy form."""
        def callback(request: Any, _response: Any) -> Any:
            reply = handler(self._cdr.deserialize_cdr(serialize_message(request), request_type))
            return deserialize_message(bytes(self._cdr.serialize_cdr(reply, reply.__msgtype__)), srv_type.Response)
        return callback

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        result = self.core.reset()
        response.success, response.message = result.success, result.message
        return response

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        result = self.core.enable(request.data)
        response.success, response.message = result.success, result.message
        return response

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
        for p in ours:
            self.core.set_param(p.name, p.value)
        return SetParametersResult(successful=True)


def main(args: list[str] | None = None) -> int:
    """``ros2 run sam2_ros tracker``: exit code 1 when the tracker cannot start (bad parameters, no weights)."""
    rclpy.init(args=args)
    try:
        node = TrackerNode()
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:  # CheckpointError is a RuntimeError
        get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
