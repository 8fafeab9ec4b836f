"""Launch the SAM 2 tracker node: ``ros2 launch sam2_ros tracker.launch.py image_topic:=/camera/image_raw``.

Parameters come from ``params_file`` (default: this package's config/tracker.yaml); a parameter
argument given a non-empty value overrides the file's value, an empty one keeps it. Taps arrive
as rqt_image_view clicks on ``click_topic``: by default the clicks on the node's own overlay,
which rqt_image_view publishes on ``/tracker/overlay_mouse_left``; ``rqt:=true`` opens that view.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from sam2_ros.ros.params import NODE_NAME, ParamSpec, spec

#: Parameters settable from the command line; the rest are set in the params file.
PARAMETER_ARGUMENTS = ("model", "checkpoint", "backend", "engine_dir", "precision", "device", "image_size",
                       "max_objects", "tap_mode", "image_transport")


def _typed(param: ParamSpec, text: str) -> bool | int | float | str:
    """A launch argument's text as the parameter's type (the node checks ranges and choices)."""
    if param.type is bool:
        return text.lower() in ("true", "1", "yes")
    return param.type(text)


def _tracker(context):
    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        text = LaunchConfiguration(name).perform(context)
        if text:
            overrides[name] = _typed(spec(name), text)
    return [Node(
        package="sam2_ros", executable="tracker", name=NODE_NAME, output="screen",
        parameters=[LaunchConfiguration("params_file").perform(context), overrides],
        remappings=[("image", LaunchConfiguration("image_topic").perform(context)),
                    ("~/click", LaunchConfiguration("click_topic").perform(context))])]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (with image_transport:=compressed, its /compressed is read)"),
        DeclareLaunchArgument("click_topic", default_value=f"/{NODE_NAME}/overlay_mouse_left",
                              description="geometry_msgs/Point taps: rqt_image_view publishes clicks on "
                                          "<viewed topic>_mouse_left"),
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([FindPackageShare("sam2_ros"), "config",
                                                                  "tracker.yaml"]),
                              description="ROS 2 parameters file with a 'tracker:' section"),
        DeclareLaunchArgument("rqt", default_value="false",
                              description="open rqt_image_view on the overlay (tick 'publish click location')"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="",
                                        description=f"{spec(name).description} (empty: params_file's value)")
                  for name in PARAMETER_ARGUMENTS]
    viewer = Node(package="rqt_image_view", executable="rqt_image_view", arguments=[f"/{NODE_NAME}/overlay"],
                  condition=IfCondition(LaunchConfiguration("rqt")))
    return LaunchDescription([*arguments, OpaqueFunction(function=_tracker), viewer])
