"""ROS 2 glue: message types, image decoding, message builders and parsers, the node's core, the bag replay.

Everything here works on rosbags-deserialized messages, so it runs and is tested without a ROS
installation (bags, CI); the rclpy node (``node.py``, imported only by the ``tracker`` entry
point) reuses it by converting its messages through CDR.
"""
