"""The tracker node: its ROS-free core and parameters, 3-D from depth, and the rclpy shells (plain, lifecycle)."""
