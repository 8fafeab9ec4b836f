"""Message definitions (ours and vision_msgs), the rosbags type store, image codecs and message builders."""
