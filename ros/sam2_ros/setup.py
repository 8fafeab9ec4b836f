"""colcon build (ament_python) of the sam2_ros ROS 2 package; pip installs from the repository root.

The Python sources, launch and config files live at the repository root. The symlinks beside
this file (sam2_ros, launch, config) point there, so they are found both by a plain build,
which runs here, and by ``colcon build --symlink-install``, which links this folder's entries
into its build folder and runs there. The version comes from package.xml so that the ROS
package has one source of truth (tests/test_packaging.py checks it against sam2_ros.__version__).
"""

from glob import glob
from pathlib import Path
from xml.etree import ElementTree

from setuptools import find_packages, setup

PACKAGE = "sam2_ros"
MANIFEST = ElementTree.parse(Path(__file__).parent / "package.xml").getroot()

setup(
    name=PACKAGE,
    version=MANIFEST.findtext("version"),
    description=MANIFEST.findtext("description"),
    license=MANIFEST.findtext("license"),
    maintainer=MANIFEST.findtext("maintainer"),
    maintainer_email=MANIFEST.find("maintainer").get("email"),
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.ros.interfaces": ["msg/*.msg", "msg/srv/*.srv"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    # Runtime dependencies come from package.xml through rosdep, as usual for ROS packages.
    install_requires=["setuptools"],
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "tracker = sam2_ros.ros.node.node:main",
            "tracker_lifecycle = sam2_ros.ros.node.lifecycle_node:main",
        ]
    },
)
