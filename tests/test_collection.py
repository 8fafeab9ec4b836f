"""The suite collects the same tests with launch_testing's pytest plugin active (a ROS-sourced machine).

Humble's and Jazzy's launch_testing plugins import every test module while collecting; a
module-level skip then skipped the whole package ("no tests collected"). tests/launch_testing_standin.py
does those imports the way each plugin does; the counts must equal a plain collection's. The stand-in is
shown to catch the fault on a small package with a module-level importorskip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _collect(path: Path, flavour: str | None, cwd: Path = REPO) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    plugin = []
    if flavour:
        env["SAM2_LAUNCH_TESTING_STANDIN"] = flavour
        plugin = ["-p", "tests.launch_testing_standin"]
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *plugin, str(path)]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _count(proc: subprocess.Popen) -> tuple[int, str]:
    out = proc.communicate(timeout=600)[0]
    found = re.search(r"(\d+) tests? collected", out)
    return (int(found.group(1)) if found else 0), out[-1500:]


def test_suite_collects_the_same_with_the_launch_testing_plugin():
    procs = {flavour: _collect(REPO / "tests", flavour) for flavour in (None, "humble", "jazzy")}
    counts = {flavour: _count(proc) for flavour, proc in procs.items()}
    plain = counts[None][0]
    assert plain > 100, counts[None][1]
    for flavour in ("humble", "jazzy"):
        assert counts[flavour][0] == plain, f"{flavour}: {counts[flavour][0]} vs {plain}\n{counts[flavour][1]}"


@pytest.mark.parametrize("flavour", ["humble", "jazzy"])
def test_the_standin_catches_a_module_level_skip(tmp_path, flavour):
    pkg = tmp_path / "tests"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "test_a.py").write_text("def test_a():\n    pass\n")
    (pkg / "test_b.py").write_text("import pytest\n\npytest.importorskip('no_such_module_here')\n")
    plain, _ = _count(_collect(pkg, None, tmp_path))
    with_plugin, out = _count(_collect(pkg, flavour, tmp_path))
    assert plain == 1 and with_plugin == 0, out
