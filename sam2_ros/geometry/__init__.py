"""3-D from registered depth: object positions and extents, intrinsics handling, labelled point clouds.

ROS-free and torch-batched: the tracker's masks stay on their device, and the node, the CLI and
the bag replay all call the same functions.
"""

from sam2_ros.geometry.cloud import masked_points
from sam2_ros.geometry.intrinsics import (
    Intrinsics,
    IntrinsicsError,
    as_intrinsics,
    intrinsics_from_camera_info,
    parse_intrinsics,
)
from sam2_ros.geometry.locate import DEFAULT_DEPTH_SCALE, DepthError, ObjectLocations, depth_to_metres, locate_objects
from sam2_ros.geometry.objects import Object3D, locate_result

__all__ = [
    "DEFAULT_DEPTH_SCALE",
    "DepthError",
    "Intrinsics",
    "IntrinsicsError",
    "Object3D",
    "ObjectLocations",
    "as_intrinsics",
    "depth_to_metres",
    "intrinsics_from_camera_info",
    "locate_objects",
    "locate_result",
    "masked_points",
    "parse_intrinsics",
]
