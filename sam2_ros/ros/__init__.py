"""ROS 2 glue, by concern: ``interfaces`` (message types and codecs), ``bags`` (bag I/O and the bag
replay), ``node`` (the node's ROS-free core, its parameters, and the rclpy shells).

Everything but the rclpy shells works on rosbags-deserialized messages, so it runs and is tested
without a ROS installation (bags, CI); the rclpy node (``node/node.py``, imported only by the
``tracker`` entry points) reuses it by converting its messages through CDR.
"""
