"""sam2_ros_interfaces' CMakeLists.txt hands rosidl files in the form Humble's and Jazzy's rosidl_cmake accept.

Why: rosidl 4 (Iron, Jazzy) refused the package's former ``<absolute dir>:<file>`` arguments at
configure time (``get_filename_component called with incorrect number of arguments``), which only
showed on a ROS machine. tests/cmake/rosidl_arguments.cmake evaluates the real CMakeLists.txt
with CMake itself and runs, on exactly the arguments it passes, the CMake steps both rosidl
generations apply to them (ros/README.md cites the upstream lines). The former form is kept here
as a negative case: the check must refuse it on both generations.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ros" / "sam2_ros_interfaces"
CHECK = Path(__file__).resolve().parent / "cmake" / "rosidl_arguments.cmake"
GENERATIONS = ("humble", "jazzy")

#: The interfaces package's CMakeLists.txt before issue 8: tuples of the repository's msg/ folder
#: and a file relative to it (without CONFIGURE_DEPENDS, which `cmake -P` does not allow).
TUPLE_FORM = """\
cmake_minimum_required(VERSION 3.12)
project(sam2_ros_interfaces)
find_package(rosidl_default_generators REQUIRED)
get_filename_component(DEFINITIONS_DIR "${CMAKE_CURRENT_SOURCE_DIR}/../../msg" ABSOLUTE)
file(GLOB INTERFACES RELATIVE "${DEFINITIONS_DIR}" "${DEFINITIONS_DIR}/*.msg" "${DEFINITIONS_DIR}/srv/*.srv")
list(TRANSFORM INTERFACES PREPEND "${DEFINITIONS_DIR}:")
rosidl_generate_interfaces(${PROJECT_NAME} ${INTERFACES} DEPENDENCIES std_msgs sensor_msgs vision_msgs)
ament_package()
"""


class CMakeFailed(RuntimeError):
    pass


def rosidl_interfaces(package_dir: Path, generation: str, tmp_path: Path) -> list[str]:
    """``<kind folder>/<file>`` per interface that ``package_dir``'s CMakeLists.txt passes to rosidl."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed (apt-get install cmake, or pip install cmake)")
    out = tmp_path / f"interfaces-{generation}.txt"
    done = subprocess.run(
        [cmake, f"-DPACKAGE_DIR={package_dir}", f"-DGENERATION={generation}", f"-DOUT={out}", "-P", str(CHECK)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    if done.returncode != 0:
        raise CMakeFailed(done.stdout + done.stderr)
    return out.read_text(encoding="utf-8").split()


def expected_interfaces() -> list[str]:
    """Every definition in the repository, in the folder that names its kind."""
    messages = sorted(f"msg/{p.name}" for p in (REPO / "msg").glob("*.msg"))
    services = sorted(f"srv/{p.name}" for p in (REPO / "msg" / "srv").glob("*.srv"))
    return messages + services


@pytest.mark.parametrize("generation", GENERATIONS)
def test_every_definition_reaches_rosidl_in_its_kind_folder(generation: str, tmp_path: Path):
    assert rosidl_interfaces(PACKAGE, generation, tmp_path) == expected_interfaces()


def test_interface_folders_are_links_to_the_one_copy():
    """msg/ and srv/ in the package are the repository's definitions, not copies that could drift."""
    assert (PACKAGE / "msg").is_symlink() and (PACKAGE / "msg").resolve() == REPO / "msg"
    assert (PACKAGE / "srv").is_symlink() and (PACKAGE / "srv").resolve() == REPO / "msg" / "srv"


@pytest.fixture
def tuple_form_package(tmp_path: Path) -> Path:
    """A copy of the former layout: <root>/msg and <root>/ros/sam2_ros_interfaces/CMakeLists.txt."""
    (tmp_path / "msg").symlink_to(REPO / "msg", target_is_directory=True)
    package = tmp_path / "ros" / "sam2_ros_interfaces"
    package.mkdir(parents=True)
    (package / "CMakeLists.txt").write_text(TUPLE_FORM, encoding="utf-8")
    return package


def test_former_tuple_form_fails_to_configure_on_jazzy(tuple_form_package: Path, tmp_path: Path):
    with pytest.raises(CMakeFailed, match="get_filename_component called with incorrect number of arguments"):
        rosidl_interfaces(tuple_form_package, "jazzy", tmp_path)


def test_former_tuple_form_puts_messages_in_no_kind_folder_on_humble(tuple_form_package: Path, tmp_path: Path):
    """Humble configures it, but the messages' relative paths have no msg/ folder to generate and install into."""
    found = rosidl_interfaces(tuple_form_package, "humble", tmp_path)
    assert found != expected_interfaces()
    assert sorted(found) == sorted(f"/{p.name}" for p in (REPO / "msg").glob("*.msg")) + sorted(
        f"srv/{p.name}" for p in (REPO / "msg" / "srv").glob("*.srv")
    )
