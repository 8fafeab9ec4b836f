"""3-D outputs of the tracker node as rosbags messages: Detection3DArray, the target point, a labelled cloud.

Why separate from ``messages.py``: these exist only with depth, and the node wires them only
when ``use_depth`` is on. Topic names (relative to the node) and ROS type names are exported
here so that ``node.py`` and the bag replay create the same publishers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from sam2_ros.geometry import Object3D
from sam2_ros.ros.interfaces.typesys import typestore

#: Output topics with depth (``~/detections_3d`` ...) and their message types.
DETECTIONS_3D, TARGET_POINT, OBJECT_POINTS = "detections_3d", "target_point", "object_points"
DEPTH_OUTPUT_TYPES = {
    DETECTIONS_3D: "vision_msgs/msg/Detection3DArray",
    TARGET_POINT: "geometry_msgs/msg/PointStamped",
    OBJECT_POINTS: "sensor_msgs/msg/PointCloud2",
}
#: Input topics with depth: the depth image registered to the colour image, and its camera info.
DEPTH, CAMERA_INFO = "depth", "camera_info"
DEPTH_INPUT_TYPES = {DEPTH: "sensor_msgs/msg/Image", CAMERA_INFO: "sensor_msgs/msg/CameraInfo"}

#: sensor_msgs/PointField datatypes.
_FLOAT32, _UINT32 = 7, 6


def _point(types: Any, xyz: Iterable[float]) -> Any:
    x, y, z = (float(v) for v in xyz)
    return types["geometry_msgs/msg/Point"](x=x, y=y, z=z)


def detection3d_array_msg(header: Any, objects: Iterable[Object3D], scores: dict[int, float]) -> Any:
    """vision_msgs/Detection3DArray of the objects with a valid 3-D estimate.

    Per object: ``id`` and the hypothesis' ``class_id`` = object id, ``score`` = presence
    probability (``scores``), the hypothesis pose = the robust position (surface median), ``bbox``
    = the robust axis-aligned box (centre and size, identity orientation). Frame: the colour
    image's optical frame (``header``).
    """
    types = typestore().types
    identity = types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
    detections = []
    for obj in objects:
        if not obj.valid:
            continue
        pose = types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](position=_point(types, obj.position), orientation=identity),
            covariance=np.zeros(36),
        )
        x, y, z = (float(v) for v in obj.size)
        detections.append(
            types["vision_msgs/msg/Detection3D"](
                header=header,
                results=[
                    types["vision_msgs/msg/ObjectHypothesisWithPose"](
                        hypothesis=types["vision_msgs/msg/ObjectHypothesis"](
                            class_id=str(obj.obj_id), score=float(scores.get(obj.obj_id, 0.0))
                        ),
                        pose=pose,
                    )
                ],
                bbox=types["vision_msgs/msg/BoundingBox3D"](
                    center=types["geometry_msgs/msg/Pose"](position=_point(types, obj.center), orientation=identity),
                    size=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
                ),
                id=str(obj.obj_id),
            )
        )
    return types["vision_msgs/msg/Detection3DArray"](header=header, detections=detections)


def point_stamped_msg(header: Any, xyz: Iterable[float]) -> Any:
    """geometry_msgs/PointStamped (the target for "follow that" controllers)."""
    types = typestore().types
    return types["geometry_msgs/msg/PointStamped"](header=header, point=_point(types, xyz))


def point_cloud_msg(header: Any, points: np.ndarray, labels: np.ndarray) -> Any:
    """sensor_msgs/PointCloud2, unorganised: float32 x, y, z and uint32 ``label`` (the object's label-image value).

    16 bytes per point, little-endian, the layout of PCL's PointXYZL without its padding.
    """
    types = typestore().types
    field = types["sensor_msgs/msg/PointField"]
    fields = [
        field(name="x", offset=0, datatype=_FLOAT32, count=1),
        field(name="y", offset=4, datatype=_FLOAT32, count=1),
        field(name="z", offset=8, datatype=_FLOAT32, count=1),
        field(name="label", offset=12, datatype=_UINT32, count=1),
    ]
    record = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("label", "<u4")])
    if len(points):
        record["x"], record["y"], record["z"] = points[:, 0], points[:, 1], points[:, 2]
        record["label"] = labels
    return types["sensor_msgs/msg/PointCloud2"](
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=16,
        row_step=16 * len(points),
        data=record.view(np.uint8).reshape(-1),
        is_dense=True,
    )
