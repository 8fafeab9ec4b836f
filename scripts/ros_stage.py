#!/usr/bin/env python3
"""The real-ROS test stage: a ROS 2 from PyPI wheels, our interfaces built with colcon, the rclpy tests run for real.

    python scripts/ros_stage.py                   # ROS 2 Jazzy (CI: scripts/test.sh runs this)
    python scripts/ros_stage.py --distro kilted   # ROS 2 Kilted, by hand
    python scripts/ros_stage.py -- -k lifecycle   # extra pytest arguments after --

What it does, all under the cache folder (``.cache/ros-stage/`` in the repository, or
``$SAM2_ROS_STAGE_CACHE``); nothing outside the project's folders and that cache is written:

1. a venv of Python 3.11 (the wheels are built for CPython 3.11) with torch==2.13.0 installed
   first and explicitly (any other torch spec pulls CUDA wheels), the pinned ROS wheels of
   ``scripts/ros_stage/requirements-<distro>.txt`` (rclpy with Fast DDS, the message packages, ament,
   rosidl generators, colcon), and this project (``pip install -e .``, its own dependencies);
2. ``vision_msgs`` (not on PyPI) generated from our definitions (``sam2_ros/ros/interfaces/
   vision_msgs_defs.py``, the fields of upstream 4.1.1) and ``ros/sam2_ros_interfaces``, built with
   colcon against the venv (the venv's prefix is a ROS install). The wheels' exported CMake targets
   name the manylinux image's Python and numpy header folders; ``scripts/ros_stage/colcon_hooks.cmake``
   points them at this machine's (a CMake project include, no file outside the cache is touched).
   The build is cached, keyed by a hash of the definitions, the CMake files, the hook and the
   requirements file;
3. the rclpy tests (``tests/test_ros_real.py``, ``tests/test_ros_stop.py``) with that venv's Python,
   Fast DDS over UDP only (``fastdds_udp_only.xml``), a ROS domain of its own, localhost discovery.
   ``SAM2_ROS_STAGE=1`` makes every rclpy skip a failure there, and the stage checks that tests ran.

A missing wheel index, a failed install or build, or a failed test ends it with one line
``ros_stage: error: ...`` and a non-zero exit code; it never skips silently.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGE_DIR = REPO / "scripts" / "ros_stage"
HOOK = STAGE_DIR / "colcon_hooks.cmake"
DDS_PROFILE = STAGE_DIR / "fastdds_udp_only.xml"
PYTHON = "python3.11"  # the ROS wheels on PyPI are CPython 3.11 wheels
TORCH = "torch==2.13.0"
#: The rclpy test files the stage runs; each must run at least one test.
TEST_FILES = ("tests/test_ros_real.py", "tests/test_ros_stop.py")
#: Bump when ensure_build / vision_msgs_package change in a way that changes the build (part of its cache key).
BUILD_RECIPE = "1"
#: Every definition vision_msgs is built from (upstream 4.1.1's package.xml dependencies).
VISION_MSGS_DEPENDS = ("std_msgs", "geometry_msgs")


class StageError(Exception):
    """A failure the stage reports as one line."""


def log(msg: str) -> None:
    print(f"ros_stage: {msg}", flush=True)


def run(cmd: list[str], *, env: dict[str, str] | None = None, logfile: Path | None = None, what: str) -> None:
    """Run ``cmd``; its output goes to ``logfile`` (named in the one-line error) or passes through."""
    if logfile is None:
        proc = subprocess.run(cmd, env=env, cwd=REPO, check=False)
    else:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("w") as f:
            proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        where = f" (log: {logfile})" if logfile else ""
        raise StageError(f"{what} failed with exit code {proc.returncode}{where}")


def file_hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- venv
def ensure_venv(cache: Path, requirements: Path) -> Path:
    """The stage's venv with torch, the ROS wheels and this project; rebuilt when the requirements change."""
    venv = cache / "venv"
    stamp = venv / ".sam2_ros_stage"
    key = file_hash(requirements.read_bytes(), TORCH.encode(), (REPO / "setup.cfg").read_bytes())
    if stamp.is_file() and stamp.read_text() == key:
        log(f"venv {venv} is up to date")
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    python = shutil.which(PYTHON)
    if python is None:
        raise StageError(f"{PYTHON} not found: the ROS 2 wheels on PyPI are built for CPython 3.11")
    log(f"creating {venv}")
    run([python, "-m", "venv", str(venv)], what=f"{PYTHON} -m venv")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    logs = cache / "logs"
    # Order matters: torch first and explicitly, so nothing later resolves another (CUDA) torch.
    run([*pip, TORCH], logfile=logs / "pip-torch.log", what=f"pip install {TORCH}")
    run(
        [*pip, "-r", str(requirements)],
        logfile=logs / "pip-ros.log",
        what=f"pip install -r {requirements.relative_to(REPO)} (is the wheel index reachable?)",
    )
    run([*pip, "-e", str(REPO)], logfile=logs / "pip-project.log", what="pip install -e . (the project)")
    stamp.write_text(key)
    return venv


def venv_env(venv: Path, extra_prefixes: tuple[Path, ...] = ()) -> dict[str, str]:
    """The environment of a sourced ROS install: the venv's prefix and ``extra_prefixes`` (a colcon install)."""
    site = venv / "lib" / f"python{PYTHON[-4:]}" / "site-packages"
    prefixes = [*map(str, extra_prefixes), str(venv)]
    env = dict(os.environ)
    for var in ("PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "VIRTUAL_ENV"):
        env.pop(var, None)
    libs = [str(p / "lib") for p in (*extra_prefixes, venv)] + sorted(str(p) for p in site.glob("ros_*.libs"))
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AMENT_PREFIX_PATH=os.pathsep.join(prefixes),
        CMAKE_PREFIX_PATH=os.pathsep.join(prefixes),
        LD_LIBRARY_PATH=os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep),
        # ros-wheels-bootstrapper re-executes Python once to set LD_LIBRARY_PATH; it is set here already.
        _ROS_WHEELS_BOOTSTRAP_COMPLETE="1",
        PYTHONNOUSERSITE="1",
    )
    py_paths = [str(p / "lib" / f"python{PYTHON[-4:]}" / "site-packages") for p in extra_prefixes]
    if py_paths:
        env["PYTHONPATH"] = os.pathsep.join(py_paths)
    return env


# ----------------------------------------------------------------------------- vision_msgs
def vision_msgs_package(dest: Path, version: str = "4.1.1") -> None:
    """Write a vision_msgs package with our definitions (the fields of upstream 4.1.1, no comments)."""
    sys.path.insert(0, str(REPO))
    try:
        from sam2_ros.ros.interfaces.vision_msgs_defs import VISION_MSGS  # noqa: PLC0415 - the repo's copy
    finally:
        sys.path.pop(0)
    (dest / "msg").mkdir(parents=True)
    names = []
    for full, text in VISION_MSGS.items():
        name = full.rsplit("/", 1)[1]
        names.append(name)
        (dest / "msg" / f"{name}.msg").write_text(text.strip() + "\n")
    depends = "\n".join(f"  <depend>{d}</depend>" for d in VISION_MSGS_DEPENDS)
    (dest / "package.xml").write_text(
        f"""<?xml version="1.0"?>
<package format="3">
  <name>vision_msgs</name>
  <version>{version}</version>
  <description>vision_msgs {version} fields, generated by sam2_ros' scripts/ros_stage.py for its tests</description>
  <maintainer email="maintainers@sam2-ros.dev">sam2_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
{depends}
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""
    )
    files = "\n".join(f'  "msg/{n}.msg"' for n in names)
    finds = "\n".join(f"find_package({d} REQUIRED)" for d in VISION_MSGS_DEPENDS)
    (dest / "CMakeLists.txt").write_text(
        f"""cmake_minimum_required(VERSION 3.12)
project(vision_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
{finds}
rosidl_generate_interfaces(${{PROJECT_NAME}}
{files}
  DEPENDENCIES {" ".join(VISION_MSGS_DEPENDS)})
ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""
    )


def interfaces_package(dest: Path) -> None:
    """Copy ros/sam2_ros_interfaces with its msg/ and srv/ links resolved (the build must not see the repo)."""
    src = REPO / "ros" / "sam2_ros_interfaces"
    dest.mkdir(parents=True)
    for name in ("CMakeLists.txt", "package.xml"):
        shutil.copy2(src / name, dest / name)
    for kind in ("msg", "srv"):
        (dest / kind).mkdir()
        for f in sorted((src / kind).resolve().glob(f"*.{kind}")):
            shutil.copy2(f, dest / kind / f.name)


def build_key(requirements: Path) -> str:
    """What the build depends on: definitions, CMake files, hook, wheel versions and the Python version."""
    from_repo = [
        REPO / "sam2_ros" / "ros" / "interfaces" / "vision_msgs_defs.py",
        REPO / "ros" / "sam2_ros_interfaces" / "CMakeLists.txt",
        REPO / "ros" / "sam2_ros_interfaces" / "package.xml",
        HOOK,
        requirements,
    ]
    defs = sorted((REPO / "msg").glob("*.msg")) + sorted((REPO / "msg" / "srv").glob("*.srv"))
    return file_hash(*(p.read_bytes() for p in [*from_repo, *defs]), PYTHON.encode(), BUILD_RECIPE.encode())


def ensure_build(cache: Path, venv: Path, requirements: Path, jobs: int) -> Path:
    """Build vision_msgs and sam2_ros_interfaces with colcon (cached); returns the merged install prefix."""
    key = build_key(requirements)
    root = cache / f"build-{key}"
    install = root / "install"
    if (root / ".complete").is_file():
        log(f"interfaces built already ({root.name})")
        return install
    for old in cache.glob("build-*"):  # one build per cache: a stale one is only disk space
        shutil.rmtree(old)
    src = root / "src"
    vision_msgs_package(src / "vision_msgs")
    interfaces_package(src / "sam2_ros_interfaces")
    env = venv_env(venv)
    python = str(venv / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import sysconfig, numpy; print(sysconfig.get_paths()['include']); print(numpy.get_include())"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise StageError(f"cannot find the Python and numpy headers of {python}: {probe.stderr.strip()}")
    py_include, np_include = probe.stdout.split()
    env["MAKEFLAGS"] = f"-j{jobs}"
    log(f"building vision_msgs and sam2_ros_interfaces with colcon in {root} (several minutes on 2 cores)")
    t0 = time.monotonic()
    run(
        [
            str(venv / "bin" / "colcon"),
            "--log-base",
            str(root / "log"),
            "build",
            "--base-paths",
            str(src),
            "--build-base",
            str(root / "build"),
            "--install-base",
            str(install),
            "--merge-install",
            "--executor",
            "sequential",
            "--event-handlers",
            "console_cohesion+",
            "--cmake-args",
            f"-DCMAKE_PROJECT_INCLUDE={HOOK}",
            f"-DSAM2_ROS_STAGE_PYTHON_INCLUDE={py_include}",
            f"-DSAM2_ROS_STAGE_NUMPY_INCLUDE={np_include}",
            f"-DPython3_EXECUTABLE={python}",
            f"-DPYTHON_EXECUTABLE={python}",
            "-DBUILD_TESTING=OFF",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        env=env,
        logfile=root / "colcon-build.log",
        what="colcon build of vision_msgs and sam2_ros_interfaces",
    )
    (root / ".complete").write_text(key)
    log(f"built in {time.monotonic() - t0:.0f} s")
    return install


# ----------------------------------------------------------------------------- tests
#: Distributions whose Fast DDS is 2.x and reads only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3
#: (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE and logs a WARN line when the old variable is set.
FASTDDS_2_DISTROS = ("humble", "jazzy")


def run_tests(cache: Path, venv: Path, install: Path, pytest_args: list[str], distro: str) -> None:
    """Run the rclpy tests in the venv; every test must run (skips fail inside the stage)."""
    env = venv_env(venv, (install,))
    profiles = {"FASTDDS_DEFAULT_PROFILES_FILE": str(DDS_PROFILE)}
    if distro in FASTDDS_2_DISTROS:
        profiles["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(DDS_PROFILE)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(
        SAM2_ROS_STAGE="1",
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        **profiles,
        # A domain of this run's own, discovery on this host only: parallel runs on one machine do not meet.
        ROS_DOMAIN_ID=env.get("ROS_DOMAIN_ID") or str(1 + os.getpid() % 100),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=str(cache / "ros-logs"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    junit = cache / "junit.xml"
    junit.unlink(missing_ok=True)
    cmd = [
        str(venv / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        f"--junitxml={junit}",
        *TEST_FILES,
        *pytest_args,
    ]
    log(f"running {' '.join(TEST_FILES)} with rclpy in {venv} (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']})")
    proc = subprocess.run(cmd, env=env, cwd=REPO, check=False)
    counts = junit_counts(junit)
    if proc.returncode != 0:
        raise StageError(f"rclpy tests failed (pytest exit code {proc.returncode}; {counts_text(counts)})")
    if counts["skipped"]:
        raise StageError(f"{counts['skipped']} rclpy tests skipped inside the stage ({counts_text(counts)})")
    if counts["tests"] == 0:
        raise StageError("no rclpy test ran")
    log(f"{counts['tests']} rclpy tests passed ({counts_text(counts)})")


def junit_counts(path: Path) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not path.is_file():
        return counts
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for k in counts:
            counts[k] += int(suite.get(k, 0))
    return counts


def counts_text(c: dict[str, int]) -> str:
    return f"{c['tests']} run, {c['failures']} failed, {c['errors']} errors, {c['skipped']} skipped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--distro", default="jazzy", help="the requirements-<distro>.txt to install (jazzy, kilted)")
    parser.add_argument("--cache", type=Path, help="cache folder (default: $SAM2_ROS_STAGE_CACHE or .cache/ros-stage)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel compile jobs")
    parser.add_argument("--build-only", action="store_true", help="prepare the venv and the build, run no test")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    requirements = STAGE_DIR / f"requirements-{args.distro}.txt"
    base = args.cache or Path(os.environ.get("SAM2_ROS_STAGE_CACHE") or REPO / ".cache" / "ros-stage")
    cache = base.resolve() / args.distro
    t0 = time.monotonic()
    try:
        if not requirements.is_file():
            raise StageError(f"no {requirements.relative_to(REPO)}: unknown --distro {args.distro!r}")
        cache.mkdir(parents=True, exist_ok=True)
        venv = ensure_venv(cache, requirements)
        install = ensure_build(cache, venv, requirements, args.jobs)
        if not args.build_only:
            run_tests(cache, venv, install, args.pytest_args, args.distro)
    except StageError as exc:
        print(f"ros_stage: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("ros_stage: interrupted", file=sys.stderr)
        return 130
    log(f"done in {time.monotonic() - t0:.0f} s ({args.distro})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
