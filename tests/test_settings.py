"""One settings table (sam2_ros/settings.py): what is made from it, what is checked against it, and the errors.

Why: a default written in two places drifts; a bad value must fail when it enters, in one line naming
the setting, its value and the bound; an export folder's limits must refuse a tracker it cannot serve
at start-up, not on the first oversized call; and a bug must keep its traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sam2_ros import errors, settings
from sam2_ros.cli import build_parser, main
from sam2_ros.factory import TrackerOptions, check_options
from sam2_ros.ros.node import params as P
from sam2_ros.settings import from_args

REPO = Path(__file__).resolve().parents[1]


def _track_args(*extra: str):
    return build_parser().parse_args(["track", "in.mp4", "--out", "out", *extra])


# ------------------------------------------------------------------ made from the table
def test_docs_parameters_md_is_generated_from_the_table():
    committed = (REPO / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert committed == P.parameters_doc(), "regenerate: see the comment at the top of docs/parameters.md"


def test_every_default_comes_from_the_table():
    """CLI options, TrackerOptions, the node's parameters, config/tracker.yaml and the tracker agree with SETTINGS."""
    from sam2_ros.tracking.tracker import Sam2Tracker

    cli = TrackerOptions.from_settings(from_args(_track_args()))
    assert cli == TrackerOptions()
    node = TrackerOptions.from_settings(P.TrackerParams().tracker_settings())
    assert node == TrackerOptions()
    yaml_values = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())[P.PARAMS_FILE_KEY]["ros__parameters"]
    for s in settings.SETTINGS:
        if s.node:
            assert yaml_values[s.name] == s.default, s.name
            assert P.spec(s.name) is s
        field = {f.name: f for f in dataclasses.fields(TrackerOptions)}[s.name]
        assert field.default in (s.default, None), s.name  # None: an empty text or path
    import inspect

    defaults = inspect.signature(Sam2Tracker.__init__).parameters
    assert defaults["max_objects"].default == settings.MAX_OBJECTS.default
    assert defaults["fill_hole_area"].default == settings.FILL_HOLE_AREA.default


def test_the_cli_replay_and_node_build_the_same_options():
    """The replay feeds the node's parameters; both end in TrackerOptions.from_settings like the CLI."""
    args = _track_args("--max-objects", "5", "--image-size", "512", "--dtype", "bfloat16", "--engines", "e")
    cli = TrackerOptions.from_settings(from_args(args))
    node = TrackerOptions.from_settings(P.TrackerParams.from_dict(from_args(args, node=True)).tracker_settings())
    assert cli == node
    assert (cli.max_objects, cli.image_size, cli.precision, cli.engine_dir) == (5, 512, "bfloat16", Path("e"))


def test_launch_arguments_and_yaml_list_every_parameter():
    import ast

    tree = ast.parse((REPO / "launch" / "tracker.launch.py").read_text())
    (listed,) = [
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARAMETER_ARGUMENTS"
    ]
    names = [s.name for s in P.parameter_specs()]
    assert list(listed) == names
    yaml_values = yaml.safe_load((REPO / "config" / "tracker.yaml").read_text())[P.PARAMS_FILE_KEY]["ros__parameters"]
    assert list(yaml_values) == names


# ------------------------------------------------------------------ bad values fail early, in one line
@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--max-objects", "300", "must be <= 255, got 300"),
        ("--max-objects", "0", "must be >= 1, got 0"),
        ("--image-size", "100", "must be a multiple of 32, got 100"),
        ("--fill-hole-area", "-1", "must be >= 0, got -1"),
    ],
)
def test_a_bad_cli_value_is_one_line_naming_the_option_and_bound(capsys, flag, value, words):
    with pytest.raises(SystemExit) as caught:
        main(["track", "in.mp4", "--out", "out", flag, value])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert caught.value.code == 2 and f"argument {flag}" in err and words in err, err


def test_a_bad_python_value_is_a_usage_error_naming_the_setting():
    with pytest.raises(errors.UsageError, match=r"^parameter 'max_objects' must be <= 255, got 300$"):
        TrackerOptions.from_settings({"max_objects": 300})
    with pytest.raises(errors.UsageError, match="unknown setting 'max_object'"):
        TrackerOptions.from_settings({"max_object": 3})


# ------------------------------------------------------------------ settings against an export's manifest
def _engines(folder: Path, max_objects: int = 16, image_size: int = 1024, precision: str = "fp16") -> Path:
    from sam2_ros.backends.engines_manifest import GRAPHS

    folder.mkdir()
    manifest = {
        "format": 1,
        "tensorrt": "10.3.0",
        "gpu": {"name": "Orin", "compute_capability": "8.7"},
        "model": {"name": "sam2.1_hiera_t", "image_size": image_size},
        "checkpoint_sha256": "random",
        "build": {"onnx_dir": "onnx", "precision": precision, "max_objects": max_objects, "max_points": 8},
        "constants": {},
        "engines": {g: {} for g in GRAPHS},
    }
    (folder / "engines.json").write_text(json.dumps(manifest))
    return folder


def test_max_objects_beyond_the_engines_batch_limit_fails_at_start_up_naming_both(tmp_path: Path):
    folder = _engines(tmp_path / "e", max_objects=16)
    check_options(TrackerOptions(backend="tensorrt", engine_dir=folder, max_objects=16))  # at the limit: fine
    with pytest.raises(errors.UsageError) as caught:
        check_options(TrackerOptions(backend="tensorrt", engine_dir=folder, max_objects=32))
    message = str(caught.value)
    assert message.startswith("max_objects 32 exceeds the engines' object batch limit 16 (")
    assert str(folder / "engines.json") in message and "--max-objects 32" in message and "\n" not in message


def test_image_size_and_precision_must_match_the_export(tmp_path: Path):
    folder = _engines(tmp_path / "e", image_size=512, precision="fp16")
    for ok in (TrackerOptions(image_size=512), TrackerOptions(), TrackerOptions(precision="float16")):
        check_options(dataclasses.replace(ok, backend="tensorrt", engine_dir=folder))
    with pytest.raises(errors.UsageError, match="image_size 768 differs from the export's image size 512"):
        check_options(TrackerOptions(backend="tensorrt", engine_dir=folder, image_size=768))
    with pytest.raises(errors.UsageError, match="precision bfloat16 differs from the engines' precision float16"):
        check_options(TrackerOptions(backend="tensorrt", engine_dir=folder, precision="bfloat16"))
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "manifest.json").write_text(json.dumps({"image_size": 256}))
    check_options(TrackerOptions(backend="onnxruntime", engine_dir=onnx, image_size=256))
    with pytest.raises(errors.UsageError, match=r"image_size 512 differs from the export's image size 256 \("):
        check_options(TrackerOptions(backend="onnxruntime", engine_dir=onnx, image_size=512))


def test_the_node_fails_at_start_up_too(tmp_path: Path):
    from sam2_ros.ros.node.core import build_tracker

    folder = _engines(tmp_path / "e", max_objects=4)
    params = P.TrackerParams.from_dict({"backend": "tensorrt", "engine_dir": str(folder), "device": "cpu"})
    with pytest.raises(errors.UsageError, match="max_objects 16 exceeds the engines' object batch limit 4"):
        build_tracker(params, node=True)


# ------------------------------------------------------------------ user errors vs bugs
def test_user_error_is_one_line_exit_2(capsys, tmp_path: Path):
    code = main(
        ["track", str(tmp_path), "--out", str(tmp_path / "o"), "--max-objects", "1", "--point", "1:1,1"]
        + ["--point", "2:2,2"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["sam2-ros track: error: 2 objects prompted but --max-objects is 1"]


def test_a_planted_bug_keeps_its_traceback_exit_1(tmp_path: Path):
    """A ValueError/KeyError/RuntimeError of our own code is a bug: Python's traceback, exit 1, not a one-liner."""
    for kind in ("ValueError", "KeyError", "RuntimeError"):
        code = (
            "import sys, sam2_ros.cli.track as t\n"
            f"def run(args): raise {kind}('planted bug')\n"
            "t.run = run\n"
            "from sam2_ros.cli import main\n"
            f"sys.exit(main(['track', 'x', '--out', {str(tmp_path / 'o')!r}]))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=120,
        )
        assert done.returncode == 1 and "Traceback" in done.stderr and f"{kind}: " in done.stderr, done.stderr
        assert "error: planted bug" not in done.stderr


def test_user_facing_error_classes_are_user_errors():
    from export.engines import BuildError
    from export.onnx_checks import OnnxCheckError
    from sam2_ros.backends.engines_manifest import EngineError
    from sam2_ros.backends.manifest import ManifestError
    from sam2_ros.download import ChecksumError, DownloadError
    from sam2_ros.geometry.intrinsics import IntrinsicsError
    from sam2_ros.geometry.locate import DepthError
    from sam2_ros.model.build import CheckpointError
    from sam2_ros.ros.interfaces import messages
    from sam2_ros.ros.interfaces.image_codec import ImageDecodeError
    from sam2_ros.tracking import errors as tracking_errors

    kinds = [BuildError, OnnxCheckError, EngineError, ManifestError, ChecksumError, DownloadError, IntrinsicsError]
    kinds += [DepthError, CheckpointError, ImageDecodeError, tracking_errors.TrackerError]
    assert all(issubclass(k, errors.UserError) for k in kinds)
    assert messages.PromptError is tracking_errors.PromptError is errors.PromptError  # one prompt error
