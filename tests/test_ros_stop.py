"""Stopping the plain and the managed node on a real ROS 2: exit 0, no traceback, no ERROR line, promptly.

Each case starts a node in its own process group (as a terminal's foreground job), waits for it to
idle or to track a 30 Hz camera, and signals it: SIGINT or SIGTERM, to the process, to the whole
process group (a terminal's Ctrl+C), or to the group and then to the process again (what a
terminal's Ctrl+C does under ``ros2 launch``: the node gets it from the terminal, and launch
forwards its own SIGINT; ``launch`` is not on PyPI, so this emulates it, and one case repeats
SIGINT every 20 ms until the process is gone, so that no moment of its exit escapes; and
tests/test_ros_node.py's launch test keeps checking exit codes where launch is installed).
With frames flowing the signal is sent half an inference step after an output, so it lands in
the middle of the next step (steps run back to back while frames arrive faster than they finish).

The node must exit with code 0 within 2 s of the signal plus one inference step, print no
traceback and no ERROR/FATAL line, and never publish on an invalid context. Skipped without
rclpy; ``scripts/ros_stage.py`` runs it (where a skip fails).
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from tests.ros_harness import (
    SMOKE,
    STARTUP_S,
    Client,
    NodeProcess,
    assert_clean_exit,
    image_msg,
    require_ros,
    unique_name,
)

#: image_size 256: an inference step long enough (a few tenths of a second on CPU) to signal inside it.
PARAMS = {**SMOKE, "image_size": 256}

CASES = [
    # node, signal, frames flowing, how it is sent
    ("plain", signal.SIGINT, False, "process"),
    ("plain", signal.SIGTERM, False, "process"),
    ("plain", signal.SIGINT, True, "process"),
    ("plain", signal.SIGTERM, True, "process"),
    ("plain", signal.SIGINT, True, "group"),
    ("plain", signal.SIGINT, False, "group+process"),
    ("plain", signal.SIGINT, True, "group+process"),
    ("plain", signal.SIGINT, True, "group+repeat"),
    ("lifecycle", signal.SIGINT, False, "process"),
    ("lifecycle", signal.SIGTERM, True, "process"),
    ("lifecycle", signal.SIGINT, True, "group+process"),
    ("lifecycle-unconfigured", signal.SIGINT, False, "group"),
]


@pytest.fixture(scope="module")
def rclpy():
    module = require_ros()
    module.init()
    yield module
    module.try_shutdown()


@pytest.fixture
def client(rclpy):
    c = Client(rclpy, "stop_client")
    yield c
    c.close()


def _activate(client: Client, name: str) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    for tid in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        request = ChangeState.Request()
        request.transition.id = tid
        assert client.call(ChangeState, f"/{name}/change_state", request, STARTUP_S).success, tid


@pytest.mark.parametrize(
    ("kind", "sig", "flowing", "how"),
    CASES,
    ids=[f"{k}-{signal.Signals(s).name}-{'frames' if f else 'idle'}-{h}" for k, s, f, h in CASES],
)
def test_stop_is_clean(client, kind, sig, flowing, how):
    from sensor_msgs.msg import Image

    name = unique_name(kind.split("-")[0])
    proc = NodeProcess(name, PARAMS, lifecycle=kind != "plain", remap={"image": f"/{name}/camera"}, new_session=True)
    try:
        if kind == "plain":
            assert proc.wait_for_output("tracking /"), proc.output()[-2000:]
        elif kind == "lifecycle":
            _activate(client, name)
            assert proc.wait_for_output("tracking /"), proc.output()[-2000:]
        else:  # unconfigured: wait until its lifecycle services answer
            from lifecycle_msgs.srv import GetState

            client.call(GetState, f"/{name}/get_state", GetState.Request(), STARTUP_S)
        step_s = 0.0
        if flowing:
            labels = client.subscribe(Image, f"/{name}/label_image", stamped=True)
            client.stream(f"/{name}/camera", 30.0, lambda i: image_msg(seed=i % 4))
            assert client.wait_for(lambda: len(labels) >= 4, STARTUP_S), proc.output()[-2000:]
            step_s = float(np.max(np.diff([r for r, _ in labels[1:]]))) / 1e9
            # Half a step after an output: inside the next step.
            count = len(labels)
            assert client.wait_for(lambda: len(labels) > count)
            time.sleep(step_s / 2)
        else:
            time.sleep(0.5)
        t0 = time.monotonic()
        if how.startswith("group"):
            proc.signal(sig, group=True)
        if how == "group+process":
            time.sleep(0.05)
        if how in ("process", "group+process"):
            proc.signal(sig)
        if how == "group+repeat":  # SIGINT every 20 ms until it is gone: no moment of its exit is safe to assume
            while proc.proc.poll() is None and time.monotonic() - t0 < 2.0 + step_s + 10.0:
                proc.signal(sig)
                time.sleep(0.02)
        code = proc.wait(2.0 + step_s + 10.0)
        elapsed = time.monotonic() - t0
        client.stop_streams()
    finally:
        proc.stop()
    assert_clean_exit(proc, code, f"{kind} {signal.Signals(sig).name} ({how})")
    assert elapsed <= 2.0 + step_s, f"stopped {elapsed:.2f} s after the signal (one step: {step_s:.2f} s)"
