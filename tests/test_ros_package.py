"""The ROS 2 node as it really runs, checked without ROS: parameters, launch arguments, config, manifest, pins.

Why: each of these broke only on a ROS 2 machine (issue 8, findings 2-7): an int for a float
parameter killed the node with a traceback, ``image_size`` allowed sizes the model refuses, the
node's errors named CLI flags, a bad launch value did not name its argument, the config file
missed namespaced nodes, package.xml missed what the node imports and starts, and pytest 9 /
Pillow broke the test run. The rclpy node itself is exercised by tests/test_ros_node.py where
rclpy exists; everything it decides is here, in ROS-free code.
"""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from sam2_ros import download
from sam2_ros.factory import resolve_checkpoint
from sam2_ros.model.config import get_config
from sam2_ros.ros.interfaces.typesys import typestore
from sam2_ros.ros.node import params as P
from sam2_ros.ros.node.core import OUTPUT_TYPES, build_tracker

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "sam2_ros" / "ros" / "node" / "node.py"
LIFECYCLE_NODE = REPO / "sam2_ros" / "ros" / "node" / "lifecycle_node.py"
LAUNCH = REPO / "launch" / "tracker.launch.py"
CONFIG = REPO / "config" / "tracker.yaml"
MANIFEST = REPO / "ros" / "sam2_ros" / "package.xml"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


# ------------------------------------------------------------------ parameters (findings 2, 3, 4)
def test_every_parameter_is_declared_with_dynamic_typing_and_its_constraints():
    """rclpy raises InvalidParameterTypeException on declare for ``diagnostics_period: 2`` unless typing is dynamic."""
    for p in P.parameter_specs():
        fields = p.descriptor()
        assert fields["dynamic_typing"] is True, p.name
        assert fields["name"] == p.name and fields["description"] == p.description
        assert fields["additional_constraints"] == p.constraints
        assert fields["read_only"] is (not p.dynamic)


def test_mistyped_parameters_are_one_line_naming_the_parameter():
    assert P.TrackerParams.from_dict({"diagnostics_period": 2}).diagnostics_period == 2.0  # int for float
    assert isinstance(P.TrackerParams.from_dict({"diagnostics_period": 2}).diagnostics_period, float)
    for values, name in [
        ({"image_size": "abc"}, "image_size"),
        ({"diagnostics_period": "2"}, "diagnostics_period"),
        ({"random_weights": 1}, "random_weights"),
        ({"max_objects": 2.0}, "max_objects"),
        ({"checkpoint": ["a"]}, "checkpoint"),
    ]:
        with pytest.raises(ValueError) as caught:
            P.TrackerParams.from_dict(values)
        assert f"parameter {name!r}" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("size", [0, 32, 48, 63, 64, 80, 96, 100, 128, 1000, 1024])
def test_image_size_bounds_match_what_the_model_accepts(size: int):
    try:
        get_config("sam2.1_hiera_t", size)
        model_accepts = True
    except ValueError:
        model_accepts = False
    try:
        P.TrackerParams.from_dict({"image_size": size})
        params_accept = True
    except ValueError:
        params_accept = False
    assert params_accept == model_accepts


def test_image_size_constraint_is_documented_in_descriptor_yaml_and_docs():
    words = P.spec("image_size").constraints
    assert words == ">= 64, multiple of 32"
    assert f"| `image_size` | int | `1024` | {words} |" in (REPO / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert ">= 64, a multiple of 32" in CONFIG.read_text(encoding="utf-8")


def test_missing_weights_error_names_node_parameters_not_cli_flags(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(download, "DEFAULT_DIR", tmp_path)
    with pytest.raises(FileNotFoundError) as caught:
        build_tracker(P.TrackerParams.from_dict({"device": "cpu"}), node=True)
    message = str(caught.value)
    assert "`checkpoint`" in message and "random_weights: true" in message and "--" not in message
    with pytest.raises(FileNotFoundError, match="--checkpoint PATH; --random-weights"):  # the CLI keeps its flags
        resolve_checkpoint(None, "sam2.1_hiera_t", False)


def test_exported_backend_errors_name_node_parameters():
    with pytest.raises(ValueError) as caught:
        build_tracker(P.TrackerParams.from_dict({"backend": "onnxruntime", "device": "cpu"}), node=True)
    assert "`engine_dir`" in str(caught.value) and "--engines" not in str(caught.value)


# ------------------------------------------------------------------ launch arguments (finding 5)
def test_launch_overrides_type_and_check_values():
    overrides = P.launch_overrides(
        {"image_size": "256", "random_weights": "true", "diagnostics_period": "2", "checkpoint": "", "tap_mode": "add"}
    )
    assert overrides == {"image_size": 256, "random_weights": True, "diagnostics_period": 2.0, "tap_mode": "add"}
    assert P.launch_overrides({s.name: "" for s in P.parameter_specs()}) == {}  # empty: the file's value


@pytest.mark.parametrize(
    "name, text, why",
    [
        ("image_size", "abc", "must be a int"),
        ("image_size", "100", "multiple of 32"),
        ("image_size", "32", ">= 64"),
        ("random_weights", "yes", "true or false"),
        ("max_objects", "0", ">= 1"),
        ("tap_mode", "toggle", "one of"),
        ("diagnostics_period", "fast", "must be a float"),
        ("imagesize", "1", "unknown parameter"),
    ],
)
def test_bad_launch_value_is_one_line_naming_the_argument(name: str, text: str, why: str):
    with pytest.raises(ValueError) as caught:
        P.launch_overrides({name: text})
    message = str(caught.value)
    assert message.startswith(f"launch argument {name}:={text!r}: ") and why in message and "\n" not in message


def test_launch_flags_are_checked():
    assert P.parse_flag("lifecycle", "True") is True and P.parse_flag("autostart", "false") is False
    with pytest.raises(ValueError, match="launch argument lifecycle:='maybe' must be true or false"):
        P.parse_flag("lifecycle", "maybe")


def test_launch_file_offers_every_parameter_and_the_lifecycle_switches():
    tree = _tree(LAUNCH)
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and isinstance(node.args[0], ast.Constant)
    }
    (parameters,) = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARAMETER_ARGUMENTS"
    ]
    assert list(ast.literal_eval(parameters)) == [s.name for s in P.parameter_specs()]
    assert {"image_topic", "click_topic", "params_file", "namespace", "lifecycle", "autostart", "rqt"} <= declared
    calls = {getattr(node.func, "id", "") for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert {"launch_overrides", "parse_flag", "LifecycleNode", "ChangeState", "OnStateTransition"} <= calls
    executables = {
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "executable" and isinstance(kw.value, ast.Constant)
    }
    assert {"tracker", "tracker_lifecycle", "rqt_image_view"} <= executables


# ------------------------------------------------------------------ config under any namespace (finding 7)
def test_config_applies_to_any_node_name_and_namespace():
    document = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert list(document) == ["/**"], "only a '/**' section applies whatever the node's name and namespace"
    assert list(document["/**"]["ros__parameters"]) == [s.name for s in P.parameter_specs()]
    assert P.load_params_file(CONFIG, node_name="front_camera_tracker") == P.TrackerParams()


def test_node_section_overrides_the_wildcard(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters: {max_objects: 4, tap_mode: add}\ntracker:\n  ros__parameters: {max_objects: 8}\n",
        encoding="utf-8",
    )
    params = P.load_params_file(path)
    assert (params.max_objects, params.tap_mode) == (8, "add")
    path.write_text("other:\n  ros__parameters: {max_objects: 8}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no '/\\*\\*:' or 'tracker:' section"):
        P.load_params_file(path)


# ------------------------------------------------------------------ the node's wiring tables
def _table_rows(name: str) -> list[ast.Call]:
    (table,) = [
        node.value
        for node in ast.walk(_tree(NODE))
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name
    ]
    return [row for row in table.elts if isinstance(row, ast.Call)]


def test_node_tables_name_types_the_cdr_store_knows():
    """Raw subscriptions are read by rosbags with these names; cdr services convert through <type>_Request."""
    types = typestore().types
    inputs = [row.args[0].value for row in _table_rows("INPUTS")]
    assert inputs and set(inputs) <= set(types)
    assert set(OUTPUT_TYPES.values()) <= set(types)
    for row in _table_rows("SERVICES"):
        call = {kw.arg: kw.value.value for kw in row.keywords}.get("call", "cdr")
        if call == "cdr":
            assert f"{row.args[0].value}_Request" in types and f"{row.args[0].value}_Response" in types


def test_lifecycle_node_has_every_transition_and_shares_the_wiring():
    tree = _tree(LIFECYCLE_NODE)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert [b.id for b in cls.bases] == ["TrackerWiring", "LifecycleNode"]
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    assert {"on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown", "on_error"} <= methods
    # No wiring of its own: no create_subscription / create_publisher / create_service in this module.
    assert not re.search(r"create_(subscription|publisher|service|timer)", LIFECYCLE_NODE.read_text())
    setup = (REPO / "ros" / "sam2_ros" / "setup.py").read_text()
    assert '"tracker_lifecycle = sam2_ros.ros.node.lifecycle_node:main"' in setup


def test_node_deserialization_errors_go_to_the_core():
    """Interface agreed in TEAM.md: rate-limited per kind by the core, counted in diagnostics."""
    assert "self.core.report_bad_message(typename, exc)" in NODE.read_text()


# ------------------------------------------------------------------ package.xml vs imports (finding 7)
#: Python modules the node and launch file import, by the rosdep key that installs them.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "tqdm": "python3-tqdm",
    "yaml": "python3-yaml",
    "rosbags": "python3-rosbags-pip",
}
#: Installed by hand (no rosdep key fits every robot; ros/README.md says how) or only by an optional backend.
NOT_FROM_ROSDEP = {"torch", "safetensors", "onnx", "onnxruntime", "onnxscript", "tensorrt", "cuda", "pycuda"}
ROS_TYPE = re.compile(r"^([a-z][a-z0-9_]*)/(msg|srv|action)/[A-Za-z0-9_]+$")


def _module_file(module: str) -> Path | None:
    base = REPO / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _node_closure() -> tuple[set[str], set[str]]:
    """Top-level modules imported (eagerly or lazily) by the nodes, the launch file and the sam2_ros code they
    import; and the packages named by ROS type strings or ``package=`` there."""
    todo, seen, modules, packages = [NODE, LIFECYCLE_NODE, LAUNCH], set(), set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(_tree(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ROS_TYPE.match(node.value):
                packages.add(ROS_TYPE.match(node.value).group(1))
            elif isinstance(node, ast.keyword) and node.arg == "package" and isinstance(node.value, ast.Constant):
                packages.add(node.value.value)
            for name in names:
                top = name.split(".")[0]
                if top in ("sam2_ros", "export"):
                    found = _module_file(name)
                    if found is not None:
                        todo.append(found)
                else:
                    modules.add(top)
    return modules, packages


def test_manifest_declares_what_the_node_imports_and_starts():
    declared = {e.text for e in ElementTree.parse(MANIFEST).getroot() if e.tag in ("exec_depend", "depend")}
    modules, packages = _node_closure()
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}
    ros = third_party - set(ROSDEP_KEYS) - NOT_FROM_ROSDEP
    assert "rclpy" in ros and "rcl_interfaces" in ros and "lifecycle_msgs" in ros  # the scan sees the nodes
    # A minimal rclpy install (the PyPI wheels) has no rosidl_runtime_py: types resolve by import (ros_type).
    assert "rosidl_runtime_py" not in ros
    assert {"rqt_image_view", "std_srvs", "sam2_ros_interfaces", "sam2_ros"} <= packages  # ... and the strings
    missing = (ros | {ROSDEP_KEYS[m] for m in third_party & set(ROSDEP_KEYS)} | (packages - {"sam2_ros"})) - declared
    assert not missing, f"add <exec_depend> for {sorted(missing)} to ros/sam2_ros/package.xml"


#: pip distribution of each Python module the node imports (setup.cfg install_requires names).
PIP_NAMES = {"numpy": "numpy", "cv2": "opencv-python-headless", "tqdm": "tqdm", "yaml": "pyyaml", "rosbags": "rosbags"}


def test_a_plain_pip_install_gives_every_module_the_node_imports():
    """Issue 17: `pip install -e .` without extras gave a node that died on `import rosbags`."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    required = {
        re.split(r"[<>=!~ \[]", line.strip())[0].lower() for line in cfg["options"]["install_requires"].split("\n")
    }
    modules, _ = _node_closure()
    needed = {PIP_NAMES[m] for m in modules & set(PIP_NAMES)} | {"torch"}
    assert "rosbags" in needed  # the scan sees the CDR code
    assert needed <= required, f"add {sorted(needed - required)} to install_requires in setup.cfg"


def test_torch_is_documented_as_a_manual_step():
    assert "python3-torch" not in MANIFEST.read_text()
    text = (REPO / "ros" / "README.md").read_text(encoding="utf-8")
    assert "pip install torch" in text and "rosdep install" in text


# ------------------------------------------------------------------ test tooling (finding 6)
def test_pytest_is_pinned_below_9_for_launch_testing():
    from packaging.specifiers import SpecifierSet

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    (pin,) = [line for line in config["options.extras_require"]["test"].split("\n") if line.startswith("pytest")]
    allowed = SpecifierSet(pin.removeprefix("pytest"))
    assert "8.4.2" in allowed and "9.0.0" not in allowed


def test_no_test_module_imports_pillow_when_collected():
    """Pillow is the test extra's; a ROS machine running tests/test_ros_node.py may not have it."""
    offenders = []
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in _tree(path).body:  # module level only: imports inside tests and fixtures are fine
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "PIL"]
    assert offenders == []


@pytest.mark.slow
def test_tests_collect_without_pillow():
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'PIL': raise ImportError('no Pillow here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pytest\n"
        "sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
