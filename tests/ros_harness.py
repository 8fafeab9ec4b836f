"""Shared by the real-ROS tests (test_ros_real.py, test_ros_stop.py): the node in a process, a client node here.

These tests need rclpy and the built vision_msgs / sam2_ros_interfaces. ``scripts/ros_stage.py``
provides both (ROS 2 Jazzy from PyPI wheels, Fast DDS) and runs them with ``SAM2_ROS_STAGE=1``,
under which a missing rclpy fails instead of skipping. Elsewhere (the main suite) they skip, from a
fixture: nothing is skipped at module level, so a collector that imports every test module
(launch_testing's pytest plugin) never skips the package.

The node runs as ``python -m sam2_ros.ros.node.node`` (or ``lifecycle_node``) with ``--ros-args``, as
``ros2 run`` would start it; its output is kept for the checks (no traceback, no ERROR line).
"""

from __future__ import annotations

import importlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
IN_STAGE = os.environ.get("SAM2_ROS_STAGE") == "1"
#: Random weights on the CPU: masks are meaningless, everything around them is real.
SMOKE = {"random_weights": True, "device": "cpu", "image_size": 128, "max_objects": 4}
STARTUP_S = 120.0  # python, torch and the model on a contended 2-core machine
TIMEOUT_S = 30.0
_names = itertools.count(1)


def require_ros() -> Any:
    """rclpy (with the built interfaces), or a skip naming what is missing; a failure inside the stage."""
    try:
        rclpy = importlib.import_module("rclpy")
        for module in ("vision_msgs.msg", "sam2_ros_interfaces.msg", "std_srvs.srv", "lifecycle_msgs.srv"):
            importlib.import_module(module)
    except ImportError as exc:
        why = f"needs rclpy and the built interfaces ({exc}); `python scripts/ros_stage.py` runs these tests"
        if IN_STAGE:
            pytest.fail(f"inside the real-ROS stage: {why}")
        pytest.skip(why)
    return rclpy


def unique_name(prefix: str) -> str:
    """A node name of its own per start, so that tests never see each other's topics."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


def image_msg(width: int = 128, height: int = 96, seed: int = 0, stamp_ns: int | None = None) -> Any:
    from sensor_msgs.msg import Image

    msg = Image()
    ns = time.time_ns() if stamp_ns is None else stamp_ns
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    msg.header.frame_id = "camera"
    msg.height, msg.width, msg.encoding, msg.step = height, width, "rgb8", width * 3
    rng = np.random.default_rng(seed)
    msg.data = rng.integers(0, 255, height * width * 3, dtype=np.uint8).tobytes()
    return msg


def stamp_ns(header: Any) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class NodeProcess:
    """``python -m sam2_ros.ros.node.<module> --ros-args ...`` with its output in a file."""

    def __init__(
        self,
        name: str,
        params: dict[str, Any],
        *,
        lifecycle: bool = False,
        remap: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> None:
        self.name = name
        module = "sam2_ros.ros.node.lifecycle_node" if lifecycle else "sam2_ros.ros.node.node"
        args = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        for src, dst in (remap or {}).items():
            args += ["-r", f"{src}:={dst}"]
        self.log = Path(tempfile.mkstemp(prefix=f"{name}_", suffix=".log")[1])
        self._file = self.log.open("w")
        # start_new_session: its own process group, as a terminal's foreground job, for group signals.
        self.proc = subprocess.Popen(
            args, stdout=self._file, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=new_session
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_for_output(self, text: str, timeout: float = STARTUP_S) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.1)
        return False

    def signal(self, sig: int, group: bool = False) -> None:
        if group:
            os.killpg(os.getpgid(self.proc.pid), sig)
        else:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        """Teardown: SIGINT, then SIGKILL if it does not go (a test that needed it has failed already)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            if self.wait(30.0) is None:
                self.proc.kill()
                self.proc.wait()
        self._file.close()


class Client:
    """A client node in this process, spun by a background executor; callbacks append to inboxes."""

    def __init__(self, rclpy: Any, name: str = "test_client") -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.node = rclpy.create_node(unique_name(name))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._publishers: list[threading.Event] = []
        self._clients: dict[str, Any] = {}  # service name -> its client (see ``call``)

    def close(self) -> None:
        for stop in self._publishers:
            stop.set()
        self.executor.shutdown()
        self.node.destroy_node()

    def subscribe(self, msg_type: Any, topic: str, qos: Any = 10, stamped: bool = False) -> list:
        """Messages of ``topic`` as they arrive; ``stamped``: (receipt time ns, message) pairs."""
        inbox: list = []
        if stamped:
            self.node.create_subscription(msg_type, topic, lambda m: inbox.append((time.time_ns(), m)), qos)
        else:
            self.node.create_subscription(msg_type, topic, inbox.append, qos)
        return inbox

    def publisher(self, msg_type: Any, topic: str, qos: Any = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def stream(self, topic: str, rate_hz: float, make: Callable[[int], Any] | None = None, qos: Any = 10) -> list:
        """Publish ``make(i)`` (a fresh camera frame) on ``topic`` at ``rate_hz`` until close; returns sent stamps."""
        from sensor_msgs.msg import Image

        pub = self.node.create_publisher(Image, topic, qos)
        stop, sent = threading.Event(), []
        make = make or (lambda i: image_msg(seed=i % 8))
        self._publishers.append(stop)

        def loop() -> None:
            period, i, next_t = 1.0 / rate_hz, 0, time.monotonic()
            while not stop.is_set():
                msg = make(i)
                pub.publish(msg)
                sent.append(stamp_ns(msg.header))
                i += 1
                next_t += period
                stop.wait(max(0.0, next_t - time.monotonic()))

        threading.Thread(target=loop, daemon=True).start()
        return sent

    def stop_streams(self) -> None:
        for stop in self._publishers:
            stop.set()

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float = TIMEOUT_S) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    #: A service server answers only once it has discovered the client's response reader, and Fast DDS
    #: waits 100 ms for that before dropping the response (the service discovery race, ros2/ros2#1253):
    #: on a loaded machine a request sent as soon as the service appears can go unanswered for good (CI
    #: saw a ``get_state`` do so). So each service keeps one client, given ``SETTLE_S`` after it first
    #: appears, and requests that may be repeated are sent again every ``RESEND_S`` until ``timeout``.
    SETTLE_S = 0.5
    RESEND_S = 10.0
    #: Service types whose request must not be sent twice (a second transition or add or remove differs).
    NOT_REPEATABLE = frozenset({"ChangeState", "AddObjects", "RemoveObject"})

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = TIMEOUT_S) -> Any:
        end = time.monotonic() + timeout
        client = self._clients.get(name)
        fresh = client is None
        if fresh:
            client = self._clients[name] = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} did not appear"
        if fresh:
            time.sleep(self.SETTLE_S)
        repeatable = srv_type.__name__ not in self.NOT_REPEATABLE
        while True:
            future = client.call_async(request)
            left = end - time.monotonic()
            if self.wait_for(future.done, min(left, self.RESEND_S) if repeatable else left):
                return future.result()
            client.remove_pending_request(future)
            assert repeatable and time.monotonic() < end, f"service {name} did not answer"

    def set_parameter(self, node: str, name: str, value: Any) -> Any:
        """Set one parameter through the node's set_parameters service; returns its SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(SetParameters, f"/{node}/set_parameters", request).results[0]

    def get_parameters(self, node: str, names: list[str]) -> list[Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        reply = self.call(GetParameters, f"/{node}/get_parameters", GetParameters.Request(names=names))
        return [parameter_value_to_python(v) for v in reply.values]

    def graph(self, node: str) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
        """(subscriptions, publications, services) of ``node``: name -> types."""
        from rclpy.node import NodeNameNonExistentError

        n = self.node
        try:
            return (
                dict(n.get_subscriber_names_and_types_by_node(node, "/")),
                dict(n.get_publisher_names_and_types_by_node(node, "/")),
                dict(n.get_service_names_and_types_by_node(node, "/")),
            )
        except NodeNameNonExistentError:  # not discovered yet
            return {}, {}, {}


def assert_clean_exit(proc: NodeProcess, code: int | None, what: str) -> None:
    """Exit code 0, no traceback, no ERROR line, no publish on an invalid context."""
    out = proc.output()
    assert code == 0, f"{what}: exit code {code}\n{out[-3000:]}"
    assert "Traceback" not in out, f"{what}: traceback\n{out[-3000:]}"
    bad = [line for line in out.splitlines() if "[ERROR]" in line or "[FATAL]" in line or "context is invalid" in line]
    assert not bad, f"{what}: {bad}"
