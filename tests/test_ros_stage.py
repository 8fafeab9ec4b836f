"""scripts/ros_stage.py without ROS: its failures are one line, its vision_msgs package is ours, its cache is ignored.

The stage itself (ROS 2 Jazzy from PyPI wheels, colcon, the rclpy tests) runs after the suite in
scripts/test.sh; these cheap checks run in the main suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from sam2_ros.ros.interfaces.vision_msgs_defs import VISION_MSGS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import ros_stage  # noqa: E402

sys.path.pop(0)


def _stage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ros_stage.py"), "--cache", str(tmp_path / "cache"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


def test_unknown_distribution_is_one_line(tmp_path):
    proc = _stage(tmp_path, "--distro", "rolling")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "ros_stage: error: no scripts/ros_stage/requirements-rolling.txt: unknown --distro 'rolling'"
    ]


def test_no_wheel_index_fails_with_one_line(tmp_path):
    """No index and no local wheels: the first install fails, named in one line with its log; no skip."""
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    proc = _stage(
        tmp_path,
        "--build-only",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(empty),
        PIP_CONSTRAINT="",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("ros_stage: error: pip install torch==2.13.0 failed with exit code")
    log = Path(line.split("(log: ")[1].rstrip(")"))
    assert log.is_file() and log.is_relative_to(tmp_path)


def test_vision_msgs_package_has_our_definitions(tmp_path):
    ros_stage.vision_msgs_package(tmp_path / "vision_msgs")
    root = ElementTree.parse(tmp_path / "vision_msgs" / "package.xml").getroot()
    assert root.findtext("name") == "vision_msgs" and root.findtext("version") == "4.1.1"
    written = {f"vision_msgs/msg/{p.stem}": p.read_text() for p in (tmp_path / "vision_msgs" / "msg").glob("*.msg")}
    assert written == {name: text.strip() + "\n" for name, text in VISION_MSGS.items()}
    cmake = (tmp_path / "vision_msgs" / "CMakeLists.txt").read_text()
    assert all(f'"msg/{name.rsplit("/", 1)[1]}.msg"' in cmake for name in VISION_MSGS)


def test_build_key_follows_the_definitions(tmp_path, monkeypatch):
    requirements = ros_stage.STAGE_DIR / "requirements-jazzy.txt"
    key = ros_stage.build_key(requirements)
    assert key == ros_stage.build_key(requirements)
    monkeypatch.setattr(ros_stage, "BUILD_RECIPE", ros_stage.BUILD_RECIPE + "x")
    assert ros_stage.build_key(requirements) != key
    other = tmp_path / "requirements-other.txt"
    other.write_text(requirements.read_text() + "\n# another wheel set\n")
    monkeypatch.undo()
    assert ros_stage.build_key(other) != key


def test_stage_cache_is_git_ignored():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(
        ["git", "check-ignore", "-q", ".cache/ros-stage/jazzy/venv"], cwd=REPO, capture_output=True, check=False
    )
    assert proc.returncode == 0, ".cache/ must be in .gitignore"
