"""vision_msgs 4.x definitions (the version Humble and Jazzy ship) for the rosbags type store.

Why here: rosbags' built-in stores carry the core ROS 2 message packages only, not
vision_msgs, and the tracker publishes Detection2DArray / LabelInfo (and Detection3DArray from
depth) and reads Detection2DArray box seeds. These are the definitions' fields without their
comments; field names, types and order are what CDR and the RIHS01 type hash depend on, and
tests/test_ros_messages.py checks the 2-D hashes against the ones rosidl generates for
vision_msgs on Jazzy (the 3-D ones have no recorded hash to compare with here).
"""

from __future__ import annotations

VISION_MSGS: dict[str, str] = {
    "vision_msgs/msg/Point2D": """
float64 x
float64 y
""",
    "vision_msgs/msg/Pose2D": """
vision_msgs/Point2D position
float64 theta
""",
    "vision_msgs/msg/BoundingBox2D": """
vision_msgs/Pose2D center
float64 size_x
float64 size_y
""",
    "vision_msgs/msg/ObjectHypothesis": """
string class_id
float64 score
""",
    "vision_msgs/msg/ObjectHypothesisWithPose": """
vision_msgs/ObjectHypothesis hypothesis
geometry_msgs/PoseWithCovariance pose
""",
    "vision_msgs/msg/Detection2D": """
std_msgs/Header header
vision_msgs/ObjectHypothesisWithPose[] results
vision_msgs/BoundingBox2D bbox
string id
""",
    "vision_msgs/msg/Detection2DArray": """
std_msgs/Header header
vision_msgs/Detection2D[] detections
""",
    "vision_msgs/msg/BoundingBox3D": """
geometry_msgs/Pose center
geometry_msgs/Vector3 size
""",
    "vision_msgs/msg/Detection3D": """
std_msgs/Header header
vision_msgs/ObjectHypothesisWithPose[] results
vision_msgs/BoundingBox3D bbox
string id
""",
    "vision_msgs/msg/Detection3DArray": """
std_msgs/Header header
vision_msgs/Detection3D[] detections
""",
    "vision_msgs/msg/VisionClass": """
uint16 class_id
string class_name
""",
    "vision_msgs/msg/LabelInfo": """
std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
""",
}
