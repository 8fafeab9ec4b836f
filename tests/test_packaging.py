"""The colcon layout and the package manifests, checked without a ROS installation.

Why: colcon stops crawling at the first package it finds, so a package at the repository root
would hide both ROS packages under ros/ (ros/README.md explains the layout), and a bad
package.xml otherwise only shows on a ROS machine, in colcon build, rosdep or ament_xmllint.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

import sam2_ros

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((REPO / "ros").glob("*/package.xml"))
PACKAGES = {"sam2_ros": "ros.ament_python", "sam2_ros_interfaces": "ros.ament_cmake"}

#: The element order that package format 3's schema (REP 149) prescribes; tags within a group
#: may interleave.
SCHEMA_ORDER = [
    {"name"},
    {"version"},
    {"description"},
    {"maintainer"},
    {"license"},
    {"url"},
    {"author"},
    {
        "build_depend",
        "build_export_depend",
        "buildtool_depend",
        "buildtool_export_depend",
        "exec_depend",
        "depend",
        "doc_depend",
        "test_depend",
        "conflict",
        "replace",
    },
    {"group_depend"},
    {"member_of_group"},
    {"export"},
]


def _colcon(*args: str, cwd: Path) -> str:
    """Run colcon with this interpreter (as CI has it), without writing logs."""
    for module in ("colcon_core", "colcon_ros", "colcon_package_information"):
        pytest.importorskip(module)
    command = [
        sys.executable,
        "-c",
        "import sys; from colcon_core.command import main; sys.exit(main())",
        "--log-base",
        "/dev/null",
        *args,
    ]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A colcon workspace whose src/ holds this repository, as a user's would."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "sam2_ros").symlink_to(REPO, target_is_directory=True)
    return tmp_path


def test_repository_root_is_no_package():
    for name in ("package.xml", "setup.py", "CMakeLists.txt"):
        assert not (REPO / name).exists(), f"{name} at the root would make colcon miss ros/*"


def test_colcon_lists_both_packages_in_dependency_order(workspace: Path):
    rows = [line.split("\t") for line in _colcon("list", "--topological-order", cwd=workspace).splitlines()]
    assert [(name, kind.strip("()")) for name, _, kind in rows] == list(reversed(PACKAGES.items()))
    assert {name: path for name, path, _ in rows} == {name: f"src/sam2_ros/ros/{name}" for name in PACKAGES}


def test_colcon_builds_the_python_package(workspace: Path):
    """The ament_python half builds anywhere; the rosidl half needs ROS (see ros/README.md)."""
    _colcon("build", "--base-paths", "src/sam2_ros/ros/sam2_ros", cwd=workspace)
    prefix = workspace / "install" / "sam2_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "sam2_ros").is_file()
    assert (prefix / "share" / "sam2_ros" / "package.xml").is_file()
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert (site / "sam2_ros" / "ros" / "interfaces" / "typesys.py").is_file()
    assert (site / "sam2_ros" / "ros" / "interfaces" / "msg" / "srv" / "AddObjects.srv").is_file()
    for executable in ("tracker", "tracker_lifecycle"):  # where `ros2 run` / launch_ros look for them
        assert (prefix / "lib" / "sam2_ros" / executable).is_file(), executable


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_manifest_is_valid_format_3(manifest: Path):
    catkin_package = pytest.importorskip("catkin_pkg.package")
    warnings: list[str] = []
    package = catkin_package.parse_package(str(manifest), warnings=warnings)  # validates, raises if invalid
    assert warnings == []
    assert package.package_format == 3
    assert package.name == manifest.parent.name
    assert package.version == sam2_ros.__version__
    assert [e.content for e in package.exports if e.tagname == "build_type"] == [PACKAGES[package.name].split(".")[1]]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_manifest_follows_schema_order(manifest: Path):
    rank = {tag: i for i, group in enumerate(SCHEMA_ORDER) for tag in group}
    tags = [child.tag for child in ElementTree.parse(manifest).getroot()]
    assert set(tags) <= set(rank), f"tags outside the schema: {set(tags) - set(rank)}"
    assert [rank[t] for t in tags] == sorted(rank[t] for t in tags), f"order {tags}"


def test_interfaces_package_is_a_rosidl_package():
    root = ElementTree.parse(REPO / "ros" / "sam2_ros_interfaces" / "package.xml").getroot()
    assert [e.text for e in root.iter("member_of_group")] == ["rosidl_interface_packages"]
    assert "rosidl_default_generators" in [e.text for e in root.iter("buildtool_depend")]
    python_root = ElementTree.parse(REPO / "ros" / "sam2_ros" / "package.xml").getroot()
    assert "sam2_ros_interfaces" in [e.text for e in python_root.iter("exec_depend")]


def test_links_reach_the_repository_sources():
    assert (REPO / "ros" / "sam2_ros" / "sam2_ros").resolve() == REPO / "sam2_ros"
    assert (REPO / "sam2_ros" / "ros" / "interfaces" / "msg").resolve() == REPO / "msg"
    assert (REPO / "ros" / "sam2_ros_interfaces" / "msg").resolve() == REPO / "msg"
    assert (REPO / "ros" / "sam2_ros_interfaces" / "srv").resolve() == REPO / "msg" / "srv"
