"""ROS-free ROS 2 glue: message types, image decoding, and message builders and parsers.

Everything here works on rosbags-deserialized messages, so it runs and is tested without a ROS
installation (bags, CI); the rclpy node reuses it by converting its messages.
"""
