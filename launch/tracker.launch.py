"""Launch the SAM 2 tracker node: ``ros2 launch sam2_ros tracker.launch.py image_topic:=/camera/image_raw``.

Parameters come from ``params_file`` (default: this package's config/tracker.yaml); every
parameter is also a launch argument, and one given a non-empty value overrides the file's value
(an empty one keeps it). A bad value (``image_size:=abc``) ends the launch with one line naming
the argument. Taps arrive as rqt_image_view clicks on ``click_topic``: by default the clicks on
the node's own overlay, which rqt_image_view publishes on ``/tracker/overlay_mouse_left``;
``rqt:=true`` opens that view.

``lifecycle:=true`` starts the managed node ``tracker_lifecycle`` instead; with ``autostart:=true``
(the default) this file configures it and, once inactive, activates it, as Nav2's lifecycle
manager would. With ``autostart:=false`` it waits for ``ros2 lifecycle set /tracker configure``.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription
from sam2_ros.ros.node.params import NODE_NAME, launch_overrides, parse_flag, spec

#: Parameters settable from the command line: all of them (params.py checks and types each value).
PARAMETER_ARGUMENTS = (
    "model",
    "checkpoint",
    "random_weights",
    "backend",
    "engine_dir",
    "precision",
    "device",
    "image_size",
    "max_objects",
    "fill_hole_area",
    "image_transport",
    "tap_mode",
    "publish_masks",
    "diagnostics_period",
    "use_depth",
    "depth_topic",
    "camera_info_topic",
    "depth_tolerance",
    "depth_scale",
    "target_object",
    "cloud_stride",
    "lost_after_frames",
    "lost_after_seconds",
    "remove_lost_after",
)


def _tracker(context):
    def text(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides = launch_overrides({name: text(name) for name in PARAMETER_ARGUMENTS})  # ValueError names the argument
    lifecycle, autostart = parse_flag("lifecycle", text("lifecycle")), parse_flag("autostart", text("autostart"))
    settings = dict(
        package="sam2_ros",
        name=NODE_NAME,
        namespace=text("namespace"),
        output="screen",
        parameters=[text("params_file"), overrides],
        remappings=[("image", text("image_topic")), ("~/click", text("click_topic"))],
    )
    if not lifecycle:
        return [Node(executable="tracker", **settings)]
    tracker = LifecycleNode(executable="tracker_lifecycle", **settings)
    if not autostart:
        return [tracker]
    activate = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=tracker,
            start_state="configuring",
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(tracker), transition_id=Transition.TRANSITION_ACTIVATE
                    )
                )
            ],
        )
    )
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(tracker), transition_id=Transition.TRANSITION_CONFIGURE)
    )
    return [tracker, activate, configure]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(
            "image_topic",
            default_value="/camera/image_raw",
            description="camera topic (with image_transport:=compressed, its /compressed is read)",
        ),
        DeclareLaunchArgument(
            "click_topic",
            default_value=f"/{NODE_NAME}/overlay_mouse_left",
            description="geometry_msgs/Point taps: rqt_image_view publishes clicks on <viewed topic>_mouse_left",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("sam2_ros"), "config", "tracker.yaml"]),
            description="ROS 2 parameters file (its '/**' section applies to the node)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument(
            "lifecycle",
            default_value="false",
            description="true: run the managed node tracker_lifecycle instead of tracker",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="with lifecycle:=true, configure and activate the node at launch",
        ),
        DeclareLaunchArgument(
            "rqt",
            default_value="false",
            description="open rqt_image_view on the overlay (tick 'publish click location')",
        ),
    ]
    arguments += [
        DeclareLaunchArgument(
            name, default_value="", description=f"{spec(name).description} (empty: params_file's value)"
        )
        for name in PARAMETER_ARGUMENTS
    ]
    viewer = Node(
        package="rqt_image_view",
        executable="rqt_image_view",
        arguments=[f"/{NODE_NAME}/overlay"],
        condition=IfCondition(LaunchConfiguration("rqt")),
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_tracker), viewer])
