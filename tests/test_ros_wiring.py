"""The launch file's actions against recording stand-ins for launch and launch_ros.

Why stand-ins: ``launch`` and ``launch_ros`` are not on PyPI, so the real-ROS stage
(scripts/ros_stage.py) cannot run ``ros2 launch``. The node shells themselves (node.py,
lifecycle_node.py: their topics, services, parameters, transitions, depth rows and teardown) are
tested on a real rclpy in tests/test_ros_real.py and tests/test_ros_stop.py, which replaced the
rclpy stand-ins that used to live here. tests/test_ros_node.py's launch test runs where launch exists.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest


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
