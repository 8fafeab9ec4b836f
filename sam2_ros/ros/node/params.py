"""The tracker node's parameters: the tracker settings (``sam2_ros.settings``) and the node's own.

Why plain data: the rclpy node declares exactly these (with their descriptions), the offline
replay builds the same settings from command-line flags, ``config/tracker.yaml`` and
``docs/parameters.md`` must list the same names and defaults, and all of that is checked
without ROS. The model/backend/tracker settings are ``sam2_ros.settings.SETTINGS`` (shared with
the command line); ``NODE_SETTINGS`` adds what only the node has (topics, taps, 3-D, diagnostics).
``TrackerParams`` is made from both tables, so a default is written once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sam2_ros.errors import UsageError
from sam2_ros.factory import OptionNames
from sam2_ros.settings import SETTINGS, Setting, SettingValue

#: The node's default name.
NODE_NAME = "tracker"
#: The section of config/tracker.yaml: ``/**`` applies to the node under any name and namespace.
PARAMS_FILE_KEY = "/**"
TAP_MODES = ("replace", "add")
IMAGE_TRANSPORTS = ("raw", "compressed")

ParamValue = SettingValue
#: A node parameter's definition (the same record as a tracker setting).
ParamSpec = Setting
#: How the tracker factory's errors name the node's parameters (the CLI's flags mean nothing to a node).
NODE_OPTION_NAMES = OptionNames(
    checkpoint="the parameter `checkpoint`",
    random_weights="`random_weights: true`",
    engine_dir="the parameter `engine_dir`",
    device="device:",
    backend="backend:",
    precision="precision:",
)

#: What only the node has; read at startup unless ``dynamic``.
NODE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "image_transport",
        str,
        "raw",
        "raw: sensor_msgs/Image on `image`; compressed: sensor_msgs/CompressedImage on `image`/compressed",
        choices=IMAGE_TRANSPORTS,
    ),
    Setting(
        "tap_mode",
        str,
        "replace",
        "replace: a tap starts over with object 1; add: each tap adds an object",
        choices=TAP_MODES,
        dynamic=True,
    ),
    Setting("publish_masks", bool, False, "include each object's mono8 mask in tracked_objects", dynamic=True),
    Setting("diagnostics_period", float, 1.0, "seconds between /diagnostics messages", minimum=0.1),
    # 3-D targets and track state (sam2_ros.geometry, sam2_ros.tracking.track_state).
    Setting(
        "use_depth",
        bool,
        False,
        "subscribe to depth_topic and camera_info_topic; publish detections_3d, target_point and object_points",
    ),
    Setting("depth_topic", str, "depth", "depth image registered to `image` (16UC1/mono16 mm or 32FC1 m)"),
    Setting("camera_info_topic", str, "camera_info", "sensor_msgs/CameraInfo of the colour (or depth) image"),
    Setting(
        "depth_tolerance", float, 0.02, "max seconds between a colour frame's and its depth image's stamps", minimum=0.0
    ),
    Setting("depth_scale", float, 0.001, "metres per unit of 16UC1 / mono16 depth", minimum=1e-9),
    Setting(
        "target_object",
        int,
        0,
        "object published on target_point; 0: the most recently tapped (else the lowest id)",
        minimum=0,
    ),
    Setting("cloud_stride", int, 4, "object_points takes every N-th pixel in x and y", minimum=1),
    Setting(
        "lost_after_frames", int, 15, "an object unseen for more tracked frames is LOST (OCCLUDED before)", minimum=0
    ),
    Setting("lost_after_seconds", float, 0.0, "also LOST when unseen for this long; 0: frames only", minimum=0.0),
    Setting(
        "remove_lost_after",
        int,
        0,
        "remove an object unseen for this many frames (frees its slot); 0: never",
        minimum=0,
    ),
)

_SPECS: tuple[Setting, ...] = (*(s for s in SETTINGS if s.node), *NODE_SETTINGS)
_BY_NAME = {s.name: s for s in _SPECS}


def parameter_specs() -> list[Setting]:
    """Every parameter, in declaration order."""
    return list(_SPECS)


def spec(name: str) -> Setting:
    """The parameter called ``name``; KeyError for unknown names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown parameter {name!r}") from None


def _from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Checked settings from ``{name: value}``; unknown names and bad values raise UsageError (a ValueError)."""
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise UsageError(f"unknown parameters {', '.join(unknown)}; known: {', '.join(_BY_NAME)}")
    return cls(**{name: _BY_NAME[name].check(value) for name, value in values.items()})


def _tracker_settings(self: Any) -> dict[str, SettingValue]:
    """The tracker/model/backend settings among these parameters (``TrackerOptions.from_settings`` takes them)."""
    return {s.name: getattr(self, s.name) for s in SETTINGS if s.node}


#: Settings of one tracker node (or one replay): a dataclass with one field per parameter, made from
#: the tables above. ``TrackerParams.from_dict(values)`` checks them; ``tracker_settings()`` picks the tracker's.
TrackerParams = dataclasses.make_dataclass(
    "TrackerParams",
    [(s.name, s.type, dataclasses.field(default=s.default)) for s in _SPECS],
    namespace={"from_dict": classmethod(_from_dict), "tracker_settings": _tracker_settings},
)
TrackerParams.__module__ = __name__


def load_params_file(path: str | Path, node_name: str = NODE_NAME) -> TrackerParams:
    """Settings from a ROS 2 parameters file, defaults for the rest.

    As rclcpp and rclpy read it: the ``/**`` section (any node) first, then the node's own
    (``<node>:`` or ``/<node>:``), whose values win.
    """
    import yaml  # noqa: PLC0415 - yaml only when a parameters file is read

    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    sections = [document[key] for key in (PARAMS_FILE_KEY, node_name, f"/{node_name}") if key in document]
    values: dict[str, Any] = {}
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise UsageError(f"{path}: a section without 'ros__parameters:'")
        values.update(section["ros__parameters"])
    if not sections:
        raise UsageError(f"{path}: no '{PARAMS_FILE_KEY}:' or '{node_name}:' section with 'ros__parameters:'")
    return TrackerParams.from_dict(values)


def parse_flag(name: str, text: str) -> bool:
    """A true/false launch argument that is no node parameter (``lifecycle``, ``autostart``)."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise UsageError(f"launch argument {name}:={text!r} must be true or false")
    return lowered == "true"


def launch_overrides(arguments: dict[str, str]) -> dict[str, ParamValue]:
    """Typed, checked node parameters from launch arguments (``{name: text}``); empty texts are left out.

    Why here: a bad value (``image_size:=abc``) must end the launch with one line that names the
    argument, not with Python's ``invalid literal for int()``; this runs without ROS, so CI tests it.
    """
    overrides = {}
    for name, text in arguments.items():
        if text == "":
            continue
        try:
            overrides[name] = spec(name).parse(text)
        except (KeyError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise UsageError(f"launch argument {name}:={text!r}: {message}") from None
    return overrides


def markdown_table() -> str:
    """The parameter table of docs/parameters.md (and the README), one row per parameter."""
    rows = [
        "| parameter | type | default | allowed | changes at runtime | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in parameter_specs():
        rows.append(
            f"| `{p.name}` | {p.type.__name__} | {_shown(p.default, p.type)} | {p.constraints} | "
            f"{'yes' if p.dynamic else 'no'} | {p.description} |"
        )
    return "\n".join(rows)


def _shown(value: Any, kind: type) -> str:
    shown = repr(value) if kind is str else str(value).lower() if kind is bool else value
    return f"`{shown}`"


def parameters_doc() -> str:
    """docs/parameters.md, generated (tests/test_settings.py checks that the committed file is this)."""
    cli = [
        "| setting | command-line option | ROS parameter | default | allowed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        flags = ", ".join(f"`{f}`" for f in (s.flag, *s.aliases)) if s.cli else "—"
        cli.append(
            f"| `{s.name}` | {flags} | {'yes' if s.node else 'no'} | {_shown(s.default, s.type)} | {s.constraints} |"
        )
    return "\n".join(
        [
            "# Parameters",
            "",
            "<!-- Generated by `python -c 'from sam2_ros.ros.node.params import parameters_doc; "
            'print(parameters_doc(), end="")\' > docs/parameters.md`; do not edit by hand. -->',
            "",
            "The tracker node's parameters, as `config/tracker.yaml` sets them and every launch argument of",
            "`launch/tracker.launch.py` overrides them. Defined once in `sam2_ros/settings.py` (model, backend,",
            "tracker) and `sam2_ros/ros/node/params.py` (the node's own); a bad value stops the node, the launch",
            "or the command with one line naming the parameter, its value and the bound.",
            "",
            markdown_table(),
            "",
            "## The same settings on the command line",
            "",
            "`sam2-ros track` (videos, folders, cameras and the bag replay), `sam2-ros annotate` and, for the",
            "model settings, `sam2-ros segment` take the tracker settings as options named after them",
            "(`max_objects` is `--max-objects`); the older spellings `--engines` and `--dtype` still work.",
            "With an export folder (`engine_dir`), `max_objects`, `image_size` and `precision` are checked",
            "against its `engines.json` / `manifest.json` at start-up.",
            "",
            *cli,
            "",
        ]
    )
