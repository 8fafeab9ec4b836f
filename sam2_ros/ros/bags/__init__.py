"""ROS 2 bags: reading and writing them (rosbags), and the bag replay (`sam2-ros track --bag`)."""
