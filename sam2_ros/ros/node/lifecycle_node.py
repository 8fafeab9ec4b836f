"""The managed (lifecycle) node ``tracker_lifecycle``: the tracker node, one transition at a time.

Why: a robot's launch system (Nav2's lifecycle manager, launch_ros' lifecycle events) brings
nodes up in order and can take one offline without killing it. Each transition is one step of
the wiring the plain node runs at once (node.py), so both behave the same once active:

- configure: load the model or engines and allocate the memory bank (the slow part, done once);
- activate: subscribe, publish, serve and start inferring;
- deactivate: stop all of that, keeping the loaded tracker (activate again is instant);
- cleanup: drop the tracker and hand its GPU memory back (``torch.cuda.empty_cache``);
- shutdown / error: stop and drop whatever is running.

A configure that fails (bad parameter, no weights) logs one line and leaves the node
unconfigured: fix the parameter and configure again. rclpy.lifecycle exists since Humble.
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn

from sam2_ros.ros.node.node import STARTUP_ERRORS, TrackerWiring, spin
from sam2_ros.ros.node.params import NODE_NAME


class TrackerLifecycleNode(TrackerWiring, LifecycleNode):
    """Declares the parameters when constructed; the transitions load, start, stop and unload the tracker."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.declare_tracker_parameters()

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.load_tracker()
        except STARTUP_ERRORS as exc:
            self.get_logger().error(f"cannot configure: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.start_tracking()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.stop_tracking()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.unload_tracker()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.stop_tracking()
        self.unload_tracker()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.stop_tracking()
        self.unload_tracker()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self.stop_tracking()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """``ros2 run sam2_ros tracker_lifecycle``: starts unconfigured, as managed nodes do."""
    return spin(TrackerLifecycleNode, args, exit_process=True)


if __name__ == "__main__":
    sys.exit(main())
