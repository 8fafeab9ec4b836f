"""Outgoing messages from plain tracking results, and incoming prompts as plain ``Prompt``s.

Why: the tracker core knows nothing about ROS and the node should hold no conversion logic, so
both directions live here, on rosbags message objects (testable without ROS; the rclpy node
converts its messages to and from these). Conventions: boxes are (x1, y1, x2, y2) in pixels;
the tracker's object ids are non-negative integers; where a message has string ids
(Detection2D.id, the AddObjects / RemoveObject services) a decimal string is that integer and
any other string a caller's name for an object (``object_ids.py`` maps names to tracker ids);
an object's label is its value in the label image (0 is background).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sam2_ros.errors import PromptError
from sam2_ros.ros.interfaces.image_codec import label_image_msg
from sam2_ros.ros.interfaces.typesys import TRACKED_OBJECT, TRACKED_OBJECT_ARRAY, typestore

Box = tuple[float, float, float, float]

#: SAM 2's point labels, as in sam2_ros_interfaces/ObjectPrompt and Isaac ROS SAM 2's services.
FOREGROUND, BACKGROUND = 1, 0

_DECIMAL = re.compile(r"[0-9]+")
#: Longest accepted object name: names live as long as their objects and appear in every output message.
MAX_NAME_LENGTH = 128

CallerId = int | str  # what a caller's string id means: a tracker id (decimal) or a name


@dataclass
class Prompt:
    """One object's prompt, free of ROS types: what the tracker's add-prompt call needs.

    ``obj_id`` None asks for a new object, or for the object ``caller_id`` names (the core
    resolves names to tracker ids). ``stamp_ns`` names the frame the prompt was made on (None:
    the latest frame), so a tap lands on the frame the user saw.
    """

    obj_id: int | None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: Box | None = None
    stamp_ns: int | None = None
    caller_id: CallerId | None = None


@dataclass
class PublishedObject:
    """One tracked object in one frame, as it is published (the node fills it from the tracker's result).

    ``score`` is the object presence probability (not the logit). ``box`` is in continuous pixel
    coordinates (a one-pixel mask at column x spans x .. x + 1) and None when the mask is empty.
    ``mask`` (HxW bool) is given only when per-object masks are published. ``name`` is the
    caller's id for it (Detection2D.id, LabelInfo); None: its decimal tracker id.
    """

    obj_id: int
    label: int
    score: float
    visible: bool
    box: Box | None = None
    mask: np.ndarray | None = None
    name: str | None = None
    state: int = 0  # TrackedObject.STATE_* (sam2_ros.tracking.track_state.TrackState); 0 = unknown
    frames_since_seen: int = 0
    reacquisitions: int = 0
    last_seen_ns: int = 0  # stamp of the image it was last seen in; 0 = never

    @property
    def caller_id(self) -> str:
        """The object's id as callers know it: its name, or its tracker id in decimal."""
        return self.name if self.name is not None else str(self.obj_id)


# --- headers and boxes -------------------------------------------------------------------------


def header_msg(nanoseconds: int, frame_id: str) -> Any:
    """A std_msgs/Header; the node passes input headers through, this is for bags and tests."""
    types = typestore().types
    sec, nanosec = divmod(nanoseconds, 1_000_000_000)
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def stamp_ns(header: Any) -> int | None:
    """The header's stamp in nanoseconds; None for a zero stamp, which ROS uses for "unset"."""
    ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
    return ns or None


def bbox2d(box: Box | None) -> Any:
    """A vision_msgs/BoundingBox2D (center and size) of an (x1, y1, x2, y2) box; all zero for None."""
    types = typestore().types
    x1, y1, x2, y2 = (float(v) for v in box) if box is not None else (0.0, 0.0, 0.0, 0.0)
    center = types["vision_msgs/msg/Pose2D"](
        position=types["vision_msgs/msg/Point2D"](x=(x1 + x2) / 2, y=(y1 + y2) / 2), theta=0.0
    )
    return types["vision_msgs/msg/BoundingBox2D"](center=center, size_x=x2 - x1, size_y=y2 - y1)


def box_from_bbox2d(bbox: Any) -> Box:
    """The (x1, y1, x2, y2) box of a vision_msgs/BoundingBox2D prompt; rejects empty or rotated boxes."""
    cx, cy = bbox.center.position.x, bbox.center.position.y
    w, h, theta = bbox.size_x, bbox.size_y, bbox.center.theta
    if not all(math.isfinite(v) for v in (cx, cy, w, h, theta)):
        raise PromptError(f"box has non-finite values (center {cx}, {cy}; size {w} x {h}; theta {theta})")
    if w <= 0 or h <= 0:
        raise PromptError(f"box has no area (size {w} x {h})")
    if theta != 0:
        raise PromptError(f"rotated boxes are not supported (theta {theta})")
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


# --- outgoing ----------------------------------------------------------------------------------


def detection_array_msg(header: Any, objects: Iterable[PublishedObject]) -> Any:
    """vision_msgs/Detection2DArray of the visible objects: id and class_id = the caller's id, score = presence."""
    types = typestore().types
    no_pose = types["geometry_msgs/msg/PoseWithCovariance"](
        pose=types["geometry_msgs/msg/Pose"](
            position=types["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
            orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
        covariance=np.zeros(36),
    )
    detections = [
        types["vision_msgs/msg/Detection2D"](
            header=header,
            results=[
                types["vision_msgs/msg/ObjectHypothesisWithPose"](
                    hypothesis=types["vision_msgs/msg/ObjectHypothesis"](
                        class_id=obj.caller_id, score=float(obj.score)
                    ),
                    pose=no_pose,
                )
            ],
            bbox=bbox2d(obj.box),
            id=obj.caller_id,
        )
        for obj in objects
        if obj.visible and obj.box is not None
    ]
    return types["vision_msgs/msg/Detection2DArray"](header=header, detections=detections)


def label_info_msg(header: Any, object_ids: Mapping[int, int | str], threshold: float) -> Any:
    """vision_msgs/LabelInfo mapping label-image values to object ids (``object_ids``: label -> caller's id).

    Value 0 is listed as "background"; ``threshold`` is the presence probability above which an
    object counts as visible.
    """
    types = typestore().types
    vision_class = types["vision_msgs/msg/VisionClass"]
    class_map = [vision_class(class_id=0, class_name="background")]
    class_map += [
        vision_class(class_id=int(label), class_name=str(obj_id)) for label, obj_id in sorted(object_ids.items())
    ]
    return types["vision_msgs/msg/LabelInfo"](header=header, class_map=class_map, threshold=float(threshold))


def tracked_object_array_msg(header: Any, objects: Iterable[PublishedObject]) -> Any:
    """sam2_ros_interfaces/TrackedObjectArray of every object; masks (mono8 0/255) where given."""
    types = typestore().types
    tracked = [
        types[TRACKED_OBJECT](
            object_id=int(obj.obj_id),
            label=int(obj.label),
            score=float(obj.score),
            visible=bool(obj.visible),
            box=bbox2d(obj.box if obj.visible else None),
            mask=[] if obj.mask is None else [label_image_msg(np.where(obj.mask, 255, 0).astype(np.uint8), header)],
            state=int(obj.state),
            frames_since_seen=int(obj.frames_since_seen),
            reacquisitions=int(obj.reacquisitions),
            last_seen=types["builtin_interfaces/msg/Time"](
                sec=obj.last_seen_ns // 1_000_000_000, nanosec=obj.last_seen_ns % 1_000_000_000
            ),
        )
        for obj in objects
    ]
    return types[TRACKED_OBJECT_ARRAY](header=header, objects=tracked)


# --- incoming ----------------------------------------------------------------------------------


def parse_caller_id(text: str) -> CallerId:
    """What a string object id means: a decimal string is that tracker id, any other string a name.

    Empty and overlong (> MAX_NAME_LENGTH) strings are refused.
    """
    if _DECIMAL.fullmatch(text):
        return int(text)
    if not text:
        raise PromptError("object id is empty; give a name (e.g. 'obj1') or a decimal tracker id")
    if len(text) > MAX_NAME_LENGTH:
        raise PromptError(f"object id {text[:20]!r}... has {len(text)} characters; at most {MAX_NAME_LENGTH}")
    return text


def prompt_from_point_stamped(msg: Any) -> Prompt:
    """A one-point foreground prompt from geometry_msgs/PointStamped (pixels; stamp = tapped frame)."""
    return Prompt(None, [_point(msg.point.x, msg.point.y)], [FOREGROUND], stamp_ns=stamp_ns(msg.header))


def prompt_from_point(msg: Any) -> Prompt:
    """A one-point foreground prompt on the latest frame from geometry_msgs/Point (rqt_image_view clicks)."""
    return Prompt(None, [_point(msg.x, msg.y)], [FOREGROUND])


def prompts_from_detections(msg: Any) -> list[Prompt]:
    """One box prompt per vision_msgs/Detection2D; its id names the object (decimal: the tracker id), "" is new.

    vision_msgs defines Detection2D.id as the same for the same object across messages, so a
    detector's track id seeds (then re-seeds) one object.
    """
    stamp = stamp_ns(msg.header)
    return [
        Prompt(
            None, box=box_from_bbox2d(det.bbox), stamp_ns=stamp, caller_id=parse_caller_id(det.id) if det.id else None
        )
        for det in msg.detections
    ]


def prompt_from_msg(msg: Any) -> Prompt:
    """The Prompt of a sam2_ros_interfaces/ObjectPrompt."""
    if len(msg.labels) != len(msg.points):
        raise PromptError(f"{len(msg.points)} points but {len(msg.labels)} labels")
    if len(msg.box) > 1:
        raise PromptError(f"at most one box per prompt, got {len(msg.box)}")
    if not len(msg.points) and not len(msg.box):
        raise PromptError("prompt has neither points nor a box")
    if msg.object_id < 0 and msg.object_id != msg.NEW_OBJECT:
        raise PromptError(f"object id {msg.object_id} is negative (NEW_OBJECT is {msg.NEW_OBJECT})")
    return Prompt(
        None if msg.object_id == msg.NEW_OBJECT else int(msg.object_id),
        [_point(p.x, p.y) for p in msg.points],
        [_label(v) for v in msg.labels],
        box_from_bbox2d(msg.box[0]) if len(msg.box) else None,
        stamp_ns(msg.header),
    )


def prompts_from_add_objects(request: Any) -> list[Prompt]:
    """One Prompt per object of an AddObjects request (Isaac ROS SAM 2's fields), in order of first mention.

    An object may have a box, points, or both (one SAM 2 prompt); its ``caller_id`` is what the
    request calls it (the core resolves names to tracker ids).
    """
    if len(request.bbox_object_ids) != len(request.bbox_coords):
        raise PromptError(f"{len(request.bbox_object_ids)} box ids but {len(request.bbox_coords)} boxes")
    if len(request.point_object_ids) != len(request.point_coords):
        raise PromptError(f"{len(request.point_object_ids)} point ids but {len(request.point_coords)} points")
    labels = [_label(v) for v in request.point_labels] or [FOREGROUND] * len(request.point_coords)
    if len(labels) != len(request.point_coords):
        raise PromptError(f"{len(request.point_coords)} points but {len(labels)} labels")
    stamp = stamp_ns(request.request_header)
    prompts: dict[CallerId, Prompt] = {}

    def prompt_for(text: str) -> Prompt:
        caller_id = parse_caller_id(text)
        return prompts.setdefault(caller_id, Prompt(None, stamp_ns=stamp, caller_id=caller_id))

    for text, bbox in zip(request.bbox_object_ids, request.bbox_coords):
        prompt = prompt_for(text)
        if prompt.box is not None:
            raise PromptError(f"object {text!r} has more than one box")
        prompt.box = box_from_bbox2d(bbox)
    for text, point, label in zip(request.point_object_ids, request.point_coords, labels):
        prompt = prompt_for(text)
        prompt.points.append(_point(point.x, point.y))
        prompt.labels.append(label)
    if not prompts:
        raise PromptError("request has neither boxes nor points")
    return list(prompts.values())


def _point(x: float, y: float) -> tuple[float, float]:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise PromptError(f"point ({x}, {y}) is not finite")
    return (float(x), float(y))


def _label(value: int) -> int:
    if value not in (FOREGROUND, BACKGROUND):
        raise PromptError(f"point label {value} is neither {FOREGROUND} (foreground) nor {BACKGROUND} (background)")
    return int(value)
