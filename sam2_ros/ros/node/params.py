"""The tracker node's parameters as plain data: names, types, defaults, descriptions, allowed values.

Why plain data: the rclpy node declares exactly these (with their descriptions), the offline
replay builds the same settings from command-line flags, ``config/tracker.yaml`` and the table in
``docs/ros.md`` must list the same names and defaults, and all of that is checked without ROS.
``TrackerParams`` is the single source: each field's metadata carries its description.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2_ros.factory import BACKENDS, DEFAULT_MODEL, DTYPES, OptionNames

#: The node's default name.
NODE_NAME = "tracker"
#: The section of config/tracker.yaml: ``/**`` applies to the node under any name and namespace.
PARAMS_FILE_KEY = "/**"
TAP_MODES = ("replace", "add")
IMAGE_TRANSPORTS = ("raw", "compressed")
#: Label images are mono8 and 0 is background, so at most 255 objects get a label.
MAX_LABELS = 255

ParamValue = bool | int | float | str
#: How the tracker factory's errors name the node's parameters (the CLI's flags mean nothing to a node).
NODE_OPTION_NAMES = OptionNames(
    checkpoint="the parameter `checkpoint`",
    random_weights="`random_weights: true`",
    engine_dir="the parameter `engine_dir`",
    device="device:",
    backend="backend:",
)


def _param(
    default: ParamValue,
    description: str,
    *,
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    multiple_of: int | None = None,
    dynamic: bool = False,
) -> Any:
    return field(
        default=default,
        metadata={
            "description": description,
            "choices": choices,
            "minimum": minimum,
            "maximum": maximum,
            "multiple_of": multiple_of,
            "dynamic": dynamic,
        },
    )


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter. ``dynamic`` ones may change while the node runs; others are read-only."""

    name: str
    type: type
    default: ParamValue
    description: str
    choices: tuple[str, ...]
    minimum: float | None
    maximum: float | None
    multiple_of: int | None
    dynamic: bool

    def check(self, value: Any) -> ParamValue:
        """``value`` if it has this parameter's type and range; ValueError naming the parameter otherwise."""
        # bool is an int in Python and ROS 2 parameters are strictly typed: refuse the mix-up both ways.
        if type(value) is not self.type and not (self.type is float and type(value) is int):
            raise ValueError(f"parameter {self.name!r} must be a {self.type.__name__}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"parameter {self.name!r} must be one of {', '.join(self.choices)}; got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"parameter {self.name!r} must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"parameter {self.name!r} must be <= {self.maximum}, got {value}")
        if self.multiple_of is not None and value % self.multiple_of:
            raise ValueError(f"parameter {self.name!r} must be a multiple of {self.multiple_of}, got {value}")
        return float(value) if self.type is float else value

    def parse(self, text: str) -> ParamValue:
        """A launch argument's or command-line text as this parameter's checked value; ValueError naming it."""
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError(f"parameter {self.name!r} must be true or false, got {text!r}")
            return self.check(lowered == "true")
        try:
            value = self.type(text.strip()) if self.type is not str else text
        except ValueError:
            raise ValueError(f"parameter {self.name!r} must be a {self.type.__name__}, got {text!r}") from None
        return self.check(value)

    def descriptor(self) -> dict[str, Any]:
        """Fields of this parameter's rcl_interfaces/ParameterDescriptor.

        ``dynamic_typing``: rclpy itself would refuse a value of another type while declaring
        the parameter, with a traceback (an int for a float: ``diagnostics_period: 2``); this
        module checks and converts types instead (``check``), so the node reports one line
        naming the parameter and accepts whole numbers for decimal ones.
        """
        return {
            "name": self.name,
            "description": self.description,
            "additional_constraints": self.constraints,
            "read_only": not self.dynamic,
            "dynamic_typing": True,
        }

    @property
    def constraints(self) -> str:
        """The allowed values in words (ParameterDescriptor.additional_constraints, the docs table)."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        words = []
        if self.minimum is not None and self.maximum is not None:
            words.append(f"{self.minimum} to {self.maximum}")
        elif self.minimum is not None:
            words.append(f">= {self.minimum}")
        if self.multiple_of is not None:
            words.append(f"multiple of {self.multiple_of}")
        return ", ".join(words)


@dataclass
class TrackerParams:
    """Settings of one tracker node (or one replay); field metadata describes each parameter."""

    model: str = _param(DEFAULT_MODEL, "SAM 2 / 2.1 model name, e.g. sam2.1_hiera_t, sam2.1_hiera_b+")
    checkpoint: str = _param("", "Meta's .pt or a .safetensors file; empty: the file `sam2-ros download MODEL` stored")
    random_weights: bool = _param(False, "untrained weights for smoke tests (masks are meaningless); never on a robot")
    backend: str = _param("torch", "inference backend", choices=BACKENDS)
    engine_dir: str = _param("", "export folder the exported backends run (`python -m export ...`); empty for torch")
    precision: str = _param("float32", "float32 (exact) or bfloat16 / float16 autocast", choices=DTYPES)
    device: str = _param("", "cpu, cuda or cuda:N; empty: cuda if available, else cpu")
    # sam2_ros.model.config.get_config refuses other sizes.
    image_size: int = _param(1024, "model input size in pixels", minimum=64, multiple_of=32)
    max_objects: int = _param(
        16, "objects tracked at once; sizes the preallocated memory bank", minimum=1, maximum=MAX_LABELS
    )
    fill_hole_area: int = _param(8, "fill mask holes up to this many low-res pixels; 0 disables", minimum=0)
    image_transport: str = _param(
        "raw",
        "raw: sensor_msgs/Image on `image`; compressed: sensor_msgs/CompressedImage on `image`/compressed",
        choices=IMAGE_TRANSPORTS,
    )
    tap_mode: str = _param(
        "replace",
        "replace: a tap starts over with object 1; add: each tap adds an object",
        choices=TAP_MODES,
        dynamic=True,
    )
    publish_masks: bool = _param(False, "include each object's mono8 mask in tracked_objects", dynamic=True)
    diagnostics_period: float = _param(1.0, "seconds between /diagnostics messages", minimum=0.1)
    # 3-D targets and track state (sam2_ros.geometry, sam2_ros.tracking.track_state).
    use_depth: bool = _param(
        False, "subscribe to depth_topic and camera_info_topic; publish detections_3d, target_point and object_points"
    )
    depth_topic: str = _param("depth", "depth image registered to `image` (16UC1/mono16 mm or 32FC1 m)")
    camera_info_topic: str = _param("camera_info", "sensor_msgs/CameraInfo of the colour (or depth) image")
    depth_tolerance: float = _param(
        0.02, "max seconds between a colour frame's and its depth image's stamps", minimum=0.0
    )
    depth_scale: float = _param(0.001, "metres per unit of 16UC1 / mono16 depth", minimum=1e-9)
    target_object: int = _param(
        0, "object published on target_point; 0: the most recently tapped (else the lowest id)", minimum=0
    )
    cloud_stride: int = _param(4, "object_points takes every N-th pixel in x and y", minimum=1)
    lost_after_frames: int = _param(15, "an object unseen for more tracked frames is LOST (OCCLUDED before)", minimum=0)
    lost_after_seconds: float = _param(0.0, "also LOST when unseen for this long; 0: frames only", minimum=0.0)
    remove_lost_after: int = _param(
        0, "remove an object unseen for this many frames (frees its slot); 0: never", minimum=0
    )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrackerParams:
        """Checked settings from ``{name: value}``; unknown names and bad values raise ValueError."""
        specs = {spec.name: spec for spec in parameter_specs()}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise ValueError(f"unknown parameters {', '.join(unknown)}; known: {', '.join(specs)}")
        return cls(**{name: specs[name].check(value) for name, value in values.items()})


def parameter_specs() -> list[ParamSpec]:
    """Every parameter, in declaration order."""
    return [
        ParamSpec(
            f.name,
            type(f.default),
            f.default,
            f.metadata["description"],
            tuple(f.metadata["choices"]),
            f.metadata["minimum"],
            f.metadata["maximum"],
            f.metadata["multiple_of"],
            f.metadata["dynamic"],
        )
        for f in dataclasses.fields(TrackerParams)
    ]


def spec(name: str) -> ParamSpec:
    """The parameter called ``name``; KeyError for unknown names."""
    for candidate in parameter_specs():
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown parameter {name!r}")


def load_params_file(path: str | Path, node_name: str = NODE_NAME) -> TrackerParams:
    """Settings from a ROS 2 parameters file, defaults for the rest.

    As rclcpp and rclpy read it: the ``/**`` section (any node) first, then the node's own
    (``<node>:`` or ``/<node>:``), whose values win.
    """
    import yaml

    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    sections = [document[key] for key in (PARAMS_FILE_KEY, node_name, f"/{node_name}") if key in document]
    values: dict[str, Any] = {}
    for section in sections:
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ValueError(f"{path}: a section without 'ros__parameters:'")
        values.update(section["ros__parameters"])
    if not sections:
        raise ValueError(f"{path}: no '{PARAMS_FILE_KEY}:' or '{node_name}:' section with 'ros__parameters:'")
    return TrackerParams.from_dict(values)


def parse_flag(name: str, text: str) -> bool:
    """A true/false launch argument that is no node parameter (``lifecycle``, ``autostart``)."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"launch argument {name}:={text!r} must be true or false")
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
            raise ValueError(f"launch argument {name}:={text!r}: {message}") from None
    return overrides


def markdown_table() -> str:
    """The parameter table of docs/ros.md (tests/test_ros_core.py keeps docs/ros.md in step with it)."""
    rows = [
        "| parameter | type | default | allowed | changes at runtime | description |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in parameter_specs():
        shown = repr(p.default) if p.type is str else str(p.default).lower() if p.type is bool else p.default
        default = f"`{shown}`"
        rows.append(
            f"| `{p.name}` | {p.type.__name__} | {default} | {p.constraints} | "
            f"{'yes' if p.dynamic else 'no'} | {p.description} |"
        )
    return "\n".join(rows)
