"""sam2_ros: Segment Anything 2 tracking for robots (ROS 2, TensorRT, ONNX Runtime, PyTorch)."""

__version__ = "0.1.0"
