"""A rosbags type store that also knows sam2_ros_interfaces and vision_msgs.

Why: the ROS-free code builds and reads messages as rosbags dataclasses, which serialize to
the same CDR bytes as rclpy messages. Our definitions are parsed from the same msg/ files that
rosidl generates the ROS package from (shipped inside this Python package through the msg
link), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import Literal

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from sam2_ros.ros.interfaces.vision_msgs_defs import VISION_MSGS

PACKAGE = "sam2_ros_interfaces"
OBJECT_PROMPT = f"{PACKAGE}/msg/ObjectPrompt"
TRACKED_OBJECT = f"{PACKAGE}/msg/TrackedObject"
TRACKED_OBJECT_ARRAY = f"{PACKAGE}/msg/TrackedObjectArray"
ADD_OBJECTS_REQUEST = f"{PACKAGE}/srv/AddObjects_Request"
ADD_OBJECTS_RESPONSE = f"{PACKAGE}/srv/AddObjects_Response"
REMOVE_OBJECT_REQUEST = f"{PACKAGE}/srv/RemoveObject_Request"
REMOVE_OBJECT_RESPONSE = f"{PACKAGE}/srv/RemoveObject_Response"

Distro = Literal["humble", "jazzy"]
_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
#: rosidl splits a service at a line holding only "---" into <Name>_Request and <Name>_Response.
_SERVICE_SEPARATOR = re.compile(r"^---[ \t]*\r?$", re.MULTILINE)


def interface_definitions() -> dict[str, str]:
    """Message definitions of sam2_ros_interfaces by full type name, services split as rosidl does."""
    root = files(__package__) / "msg"
    definitions = {
        f"{PACKAGE}/msg/{entry.name[:-4]}": entry.read_text(encoding="utf-8")
        for entry in root.iterdir()
        if entry.name.endswith(".msg")
    }
    for entry in (root / "srv").iterdir():
        if not entry.name.endswith(".srv"):
            continue
        parts = _SERVICE_SEPARATOR.split(entry.read_text(encoding="utf-8"))
        if len(parts) != 2:
            raise ValueError(
                f"{entry.name}: expected one '---' line between request and response, found {len(parts) - 1}"
            )
        name = f"{PACKAGE}/srv/{entry.name[:-4]}"
        definitions[f"{name}_Request"], definitions[f"{name}_Response"] = parts
    return definitions


@cache
def typestore(distro: Distro = "jazzy") -> Typestore:
    """The ROS 2 ``distro`` store plus vision_msgs and sam2_ros_interfaces (shared: register nothing on it).

    The distro matters only for type hashes and bag metadata; every type involved serializes
    identically on Humble and Jazzy.
    """
    store = get_typestore(_STORES[distro])
    types = {}
    for name, text in {**VISION_MSGS, **interface_definitions()}.items():
        # rosbags' .msg parser files every type under msg/; keep the srv/ names rosidl gives.
        (types[name],) = get_types_from_msg(text, name).values()
    store.register(types)
    return store
