"""sam2_ros: SAM 2 / 2.1 tracking for ROS 2, exported to TensorRT.

Installs with pip (``pip install -e .[onnx,test]``) and builds with colcon as an
ament_python package (the data_files below are what ament's index expects).
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sam2_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Segment Anything 2 (SAM 2 / 2.1) streaming tracker for ROS 2 with TensorRT export",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "export", "export.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    # torch is deliberately unpinned here: install the build that fits your machine first
    # (scripts/setup.sh installs torch==2.13.0 CPU; Jetsons use NVIDIA's wheel).
    install_requires=["torch>=2.3", "numpy", "opencv-python-headless", "tqdm", "safetensors", "pyyaml"],
    extras_require={
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18"],
        "tensorrt": ["tensorrt>=10.0", "cuda-python>=12.0"],
        "bag": ["rosbags>=0.10"],
        "test": ["pytest>=8", "rosbags>=0.10", "hydra-core", "iopath", "pillow"],
    },
    entry_points={"console_scripts": [f"sam2-ros = {PACKAGE}.cli:main"]},
    zip_safe=True,
)
