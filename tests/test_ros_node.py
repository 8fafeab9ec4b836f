"""The ``tracker`` and ``tracker_lifecycle`` nodes end to end under ROS 2 (launch_testing); skipped without rclpy.

The core's behaviour is tested without ROS in test_ros_core.py; this checks the rclpy shell on a
ROS 2 machine: raw subscriptions, CDR conversion of services, QoS (latched LabelInfo), the
inference thread, parameters and clean shutdown; and the managed node driven through its
lifecycle services (topics and services appear on activate and go on deactivate, cleanup
releases the tracker, configure loads it again). Run after ``colcon build`` with the workspace
sourced and this package's Python dependencies installed (``pip install -e .[bag]``):

    python -m pytest tests/test_ros_node.py        # or: launch_test tests/test_ros_node.py

Random weights at a 128-pixel input keep it quick on CPU; masks are meaningless, plumbing is real.
"""

from __future__ import annotations

import time
import unittest

import numpy as np
import pytest

# Not a module-level importorskip: launch_testing's pytest plugin imports every test module while
# collecting, and a skip raised there would skip the whole tests package (tests/test_collection.py).
try:
    import launch_ros.actions
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Point, PointStamped
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sam2_ros_interfaces.msg import TrackedObjectArray
    from sam2_ros_interfaces.srv import AddObjects, RemoveObject
    from sensor_msgs.msg import Image
    from std_srvs.srv import SetBool, Trigger
    from vision_msgs.msg import BoundingBox2D, Detection2DArray, LabelInfo

    import launch
except ImportError as exc:
    pytestmark = pytest.mark.skip(reason=f"needs a sourced ROS 2 with launch_testing (launch_test runs it): {exc}")

    def post_shutdown_test():
        return lambda cls: cls
else:
    post_shutdown_test = launch_testing.post_shutdown_test

HEIGHT, WIDTH = 48, 64
STARTUP_S = 180.0  # building the model on a slow CPU
TIMEOUT_S = 30.0


#: Parameters of both nodes; an int for the float diagnostics_period, as users write it (finding 2).
SMOKE_PARAMETERS = {
    "random_weights": True,
    "image_size": 128,
    "device": "cpu",
    "max_objects": 4,
    "diagnostics_period": 1,
}


@pytest.mark.launch_test
def generate_test_description():
    tracker = launch_ros.actions.Node(
        package="sam2_ros",
        executable="tracker",
        name="tracker",
        output="screen",
        parameters=[SMOKE_PARAMETERS],
        remappings=[("image", "/test/image"), ("~/click", "/test/click")],
    )
    managed = launch_ros.actions.Node(
        package="sam2_ros",
        executable="tracker_lifecycle",
        name="managed_tracker",
        output="screen",
        parameters=[SMOKE_PARAMETERS],
        remappings=[("image", "/test/managed_image")],
    )
    return (
        launch.LaunchDescription([tracker, managed, launch_testing.actions.ReadyToTest()]),
        {"tracker": tracker, "managed": managed},
    )


class TestTrackerNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("tracker_test_client")
        cls.inbox: dict[str, list] = {
            name: []
            for name in ("label_info", "label_image", "detections", "tracked_objects", "overlay", "diagnostics")
        }
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        for name, msg_type, topic, qos in [
            ("label_info", LabelInfo, "/tracker/label_info", latched),
            ("label_image", Image, "/tracker/label_image", 10),
            ("detections", Detection2DArray, "/tracker/detections", 10),
            ("tracked_objects", TrackedObjectArray, "/tracker/tracked_objects", 10),
            ("overlay", Image, "/tracker/overlay", 10),
            ("diagnostics", DiagnosticArray, "/diagnostics", 10),
        ]:
            cls.node.create_subscription(msg_type, topic, cls.inbox[name].append, qos)
        cls.images = cls.node.create_publisher(Image, "/test/image", 10)
        cls.clicks = cls.node.create_publisher(Point, "/test/click", 10)
        cls.taps = cls.node.create_publisher(PointStamped, "/tracker/tap", 10)
        cls.frame = 0

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    # ------------------------------------------------------------------ helpers
    def spin_until(self, predicate, timeout: float = TIMEOUT_S, publish: bool = False) -> bool:
        """Spin (publishing a frame every 0.2 s when ``publish``) until ``predicate()`` holds."""
        end, next_frame = time.monotonic() + timeout, 0.0
        while time.monotonic() < end:
            if publish and time.monotonic() >= next_frame:
                self.publish_frame()
                next_frame = time.monotonic() + 0.2
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if predicate():
                return True
        return False

    def publish_frame(self) -> Image:
        msg = Image()
        msg.header.stamp.sec, msg.header.frame_id = 1000 + self.frame, "camera"
        msg.height, msg.width, msg.encoding, msg.step = HEIGHT, WIDTH, "rgb8", WIDTH * 3
        msg.data = np.random.default_rng(self.frame).integers(0, 255, HEIGHT * WIDTH * 3, dtype=np.uint8).tobytes()
        self.images.publish(msg)
        self.frame += 1
        return msg

    def call(self, srv_type, name: str, request):
        client = self.node.create_client(srv_type, name)
        self.assertTrue(client.wait_for_service(timeout_sec=TIMEOUT_S), name)
        future = client.call_async(request)
        self.assertTrue(self.spin_until(future.done), name)
        self.node.destroy_client(client)
        return future.result()

    def latest_ids(self) -> list[int]:
        return [o.object_id for o in self.inbox["tracked_objects"][-1].objects] if self.inbox["tracked_objects"] else []

    # -------------------------------------------------------------------- tests
    def test_tracking_through_topics_and_services(self) -> None:
        self.assertTrue(self.spin_until(lambda: self.inbox["label_info"], STARTUP_S), "no latched LabelInfo")
        self.assertEqual([c.class_name for c in self.inbox["label_info"][-1].class_map], ["background"])

        # Frames in, one label image per tracked frame with that frame's header.
        self.assertTrue(self.spin_until(lambda: self.inbox["label_image"], publish=True))
        labels = self.inbox["label_image"][-1]
        self.assertEqual((labels.encoding, labels.height, labels.width), ("mono8", HEIGHT, WIDTH))
        self.assertEqual(labels.header.frame_id, "camera")
        self.assertGreaterEqual(labels.header.stamp.sec, 1000)
        self.assertTrue(self.spin_until(lambda: self.inbox["overlay"], publish=True), "overlay not drawn")
        self.assertEqual(self.inbox["overlay"][-1].encoding, "rgb8")

        # An rqt_image_view click (remapped Point) starts object 1; tap mode replace keeps it the only one.
        click = Point(x=20.0, y=15.0)
        self.clicks.publish(click)
        self.assertTrue(self.spin_until(lambda: self.latest_ids() == [1], publish=True))
        self.clicks.publish(Point(x=40.0, y=30.0))
        self.spin_until(lambda: False, timeout=1.0, publish=True)
        self.assertEqual(self.latest_ids(), [1])
        info = self.inbox["label_info"][-1]
        self.assertEqual([(c.class_id, c.class_name) for c in info.class_map], [(0, "background"), (1, "1")])
        self.assertEqual(self.inbox["detections"][-1].header.frame_id, "camera")

        # Isaac ROS SAM 2 style services.
        request = AddObjects.Request()
        box = BoundingBox2D()
        box.center.position.x, box.center.position.y, box.size_x, box.size_y = 32.0, 24.0, 20.0, 16.0
        request.bbox_object_ids, request.bbox_coords = ["5"], [box]
        reply = self.call(AddObjects, "/tracker/add_objects", request)
        self.assertTrue(reply.success, reply.message)
        self.assertEqual((list(reply.object_ids), list(reply.object_indices)), (["1", "5"], [1, 2]))
        self.assertTrue(self.spin_until(lambda: self.latest_ids() == [1, 5], publish=True))
        reply = self.call(RemoveObject, "/tracker/remove_object", RemoveObject.Request(object_id="5"))
        self.assertTrue(reply.success and list(reply.object_ids) == ["1"], reply.message)
        self.assertTrue(self.spin_until(lambda: self.latest_ids() == [1], publish=True))
        reply = self.call(RemoveObject, "/tracker/remove_object", RemoveObject.Request(object_id="42"))
        self.assertFalse(reply.success)
        self.assertIn("unknown object id 42", reply.message)

        # Runtime parameters: tap_mode may change, the model may not.
        self.assertTrue(self.set_parameter("tap_mode", "add"))
        self.assertFalse(self.set_parameter("tap_mode", "toggle"))
        self.assertFalse(self.set_parameter("model", "sam2.1_hiera_l"))

        # A stamped tap naming a frame the node has seen adds object 2 (tap mode add).
        seen = self.inbox["label_image"][-1].header
        self.taps.publish(PointStamped(header=seen, point=Point(x=10.0, y=10.0)))
        self.assertTrue(self.spin_until(lambda: self.latest_ids() == [1, 2], publish=True))

        reply = self.call(Trigger, "/tracker/reset", Trigger.Request())
        self.assertTrue(reply.success, reply.message)
        self.assertTrue(
            self.spin_until(
                lambda: self.latest_ids() == [] and len(self.inbox["label_info"][-1].class_map) == 1, publish=True
            )
        )

        self.assertTrue(self.call(SetBool, "/tracker/enable", SetBool.Request(data=False)).success)
        self.spin_until(lambda: False, timeout=1.0)  # let in-flight frames land
        count = len(self.inbox["label_image"])
        self.spin_until(lambda: False, timeout=2.0, publish=True)
        self.assertEqual(len(self.inbox["label_image"]), count, "published while paused")
        self.assertTrue(self.call(SetBool, "/tracker/enable", SetBool.Request(data=True)).success)
        self.assertTrue(self.spin_until(lambda: len(self.inbox["label_image"]) > count, publish=True))

    def test_diagnostics(self) -> None:
        def tracker_status():
            return [s for a in self.inbox["diagnostics"] for s in a.status if s.name == "tracker: tracking"]

        self.assertTrue(self.spin_until(lambda: tracker_status(), STARTUP_S, publish=True))
        self.assertTrue(
            self.spin_until(
                lambda: any(kv.key == "fps" and kv.value not in ("", "0.00") for kv in tracker_status()[-1].values),
                publish=True,
            )
        )
        keys = {kv.key for kv in tracker_status()[-1].values}
        self.assertLessEqual({"fps", "latency_ms_mean", "frames_dropped", "frames_received"}, keys)

    def set_parameter(self, name: str, value: str) -> bool:
        request = SetParameters.Request(
            parameters=[
                Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
            ]
        )
        return self.call(SetParameters, "/tracker/set_parameters", request).results[0].successful


class TestLifecycleNode(unittest.TestCase):
    """configure -> activate -> deactivate -> activate -> deactivate -> cleanup -> configure, through the services."""

    NAME = "/managed_tracker"

    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("managed_tracker_test_client")
        cls.label_images: list = []
        cls.node.create_subscription(Image, f"{cls.NAME}/label_image", cls.label_images.append, 10)
        cls.images = cls.node.create_publisher(Image, "/test/managed_image", 10)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, predicate, timeout: float = TIMEOUT_S, publish: bool = False) -> bool:
        end, next_frame = time.monotonic() + timeout, 0.0
        while time.monotonic() < end:
            if publish and time.monotonic() >= next_frame:
                msg = Image()
                msg.header.frame_id, msg.height, msg.width, msg.encoding, msg.step = (
                    "camera",
                    HEIGHT,
                    WIDTH,
                    "rgb8",
                    WIDTH * 3,
                )
                msg.data = bytes(HEIGHT * WIDTH * 3)
                self.images.publish(msg)
                next_frame = time.monotonic() + 0.2
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if predicate():
                return True
        return False

    def call(self, srv_type, name: str, request, timeout: float = TIMEOUT_S):
        client = self.node.create_client(srv_type, name)
        self.assertTrue(client.wait_for_service(timeout_sec=TIMEOUT_S), name)
        future = client.call_async(request)
        self.assertTrue(self.spin_until(future.done, timeout), name)
        self.node.destroy_client(client)
        return future.result()

    def transition(self, transition_id: int, timeout: float = TIMEOUT_S) -> None:
        request = ChangeState.Request()
        request.transition.id = transition_id
        self.assertTrue(self.call(ChangeState, f"{self.NAME}/change_state", request, timeout).success, transition_id)

    def state(self) -> int:
        return self.call(GetState, f"{self.NAME}/get_state", GetState.Request()).current_state.id

    def serving(self) -> bool:
        """The node advertises its outputs and its add_objects service."""
        services = {name for name, _ in self.node.get_service_names_and_types()}
        return self.node.count_publishers(f"{self.NAME}/label_image") > 0 and f"{self.NAME}/add_objects" in services

    def not_serving(self) -> bool:
        services = {name for name, _ in self.node.get_service_names_and_types()}
        return (
            self.node.count_publishers(f"{self.NAME}/label_image") == 0 and f"{self.NAME}/add_objects" not in services
        )

    def test_transitions_open_and_close_the_node(self, proc_output, managed) -> None:
        self.assertEqual(self.state(), State.PRIMARY_STATE_UNCONFIGURED)
        self.assertTrue(self.spin_until(self.not_serving, 2.0), "serves before it is configured")

        self.transition(Transition.TRANSITION_CONFIGURE, STARTUP_S)  # loads the model
        self.assertEqual(self.state(), State.PRIMARY_STATE_INACTIVE)
        self.spin_until(lambda: False, timeout=1.0)
        self.assertTrue(self.not_serving(), "an inactive node must not publish or serve")

        for _ in range(2):  # activating again after a deactivate reuses the loaded tracker
            self.transition(Transition.TRANSITION_ACTIVATE)
            self.assertEqual(self.state(), State.PRIMARY_STATE_ACTIVE)
            self.assertTrue(self.spin_until(self.serving), "topics and services did not appear on activate")
            count = len(self.label_images)
            self.assertTrue(self.spin_until(lambda n=count: len(self.label_images) > n, publish=True), "not tracking")
            self.transition(Transition.TRANSITION_DEACTIVATE)
            self.assertEqual(self.state(), State.PRIMARY_STATE_INACTIVE)
            self.assertTrue(self.spin_until(self.not_serving), "topics and services did not go on deactivate")
            self.spin_until(lambda: False, timeout=1.0)
            count = len(self.label_images)
            self.spin_until(lambda: False, timeout=2.0, publish=True)
            self.assertEqual(len(self.label_images), count, "tracked while inactive")

        self.transition(Transition.TRANSITION_CLEANUP)
        self.assertEqual(self.state(), State.PRIMARY_STATE_UNCONFIGURED)
        # The tracker is dropped (on a GPU the log also gives the CUDA memory still allocated).
        proc_output.assertWaitFor("tracker released", process=managed, timeout=TIMEOUT_S)

        self.transition(Transition.TRANSITION_CONFIGURE, STARTUP_S)  # and can be loaded again
        self.assertEqual(self.state(), State.PRIMARY_STATE_INACTIVE)


@post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
