"""Small helpers shared across sam2_ros."""
