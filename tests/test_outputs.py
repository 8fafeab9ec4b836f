"""Every output is complete or plainly failed (issue 15): decode checks, all-or-nothing output folders,
warnings on the console and in the JSON, Ctrl+C, and the first-five-minutes errors.

Each test runs the command the way a user would (``main([...])`` in-process, random weights,
128-pixel model input, a few frames) and checks what a user sees: the exit code, the one line
on stderr, and what is (or is not) left in ``--out``. The D/E/C labels are the issue's cases.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam2_ros.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "128", "--device", "cpu"]


def run_cli(argv: list) -> tuple[int, str, str]:
    """``main(argv)`` with stdout/stderr captured; argparse's exits become the return code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    """The command's error line (progress bars and the random-weights banner may precede it)."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def frames_folder(data_dir: Path, folder: Path, count: int, scale: float = 0.25) -> Path:
    """``count`` bedroom frames, shrunk (fast to decode and track), as JPEGs."""
    folder.mkdir(parents=True)
    for i in range(count):
        bgr = cv2.imread(str(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg"))
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), small)
    return folder


def truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def count_decodable(video: Path) -> tuple[int, int]:
    cap = cv2.VideoCapture(str(video))
    announced, read = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.read()[0]:
        read += 1
    cap.release()
    return read, announced


# ------------------------------------------------------------------------------ 1. decode errors
def small_video(data_dir: Path, path: Path, frames: int = 10) -> Path:
    """Bedroom frames at 96x64 in an MJPG AVI, whose header announces the frame count up front."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    for i in range(frames):
        writer.write(cv2.resize(cv2.imread(str(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg")), (96, 64)))
    writer.release()
    return path


def test_d1_truncated_video_is_an_error_or_ends_early_on_request(data_dir, tmp_path):
    """The issue's case is an mp4 cut to a quarter (see scripts/probe_bad_inputs.py); any container works alike."""
    video = small_video(data_dir, tmp_path / "trunc.avi")
    truncate(video, 0.4)
    read, announced = count_decodable(video)
    assert 0 < read < announced  # the fixture is what the test says: a video cut short
    out = tmp_path / "out"
    rc, _, err = run_cli(["track", video, "--out", out, "--point", "1:10,10", "--no-overlay", *TINY])
    line = one_error_line(err)
    assert rc == 2 and str(video) in line and f"frame {read}" in line and "--skip-bad-frames" in line
    assert not out.exists()

    rc, stdout, err = run_cli(
        ["track", video, "--out", out, "--point", "1:10,10", "--no-overlay", "--skip-bad-frames", *TINY]
    )
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["frames"] == read and summary["ended_early"]
    assert f"{read} of the {announced} frames" in summary["ended_early"]
    assert summary["ended_early"] in summary["warnings"]
    assert err.count(f"warning: {summary['ended_early']}") == 1  # on the console, once


def test_d2_e1_truncated_jpeg_in_a_folder(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 3)
    truncate(frames / "00001.jpg", 1 / 3)
    out = tmp_path / "out"
    rc, _, err = run_cli(["track", frames, "--out", out, "--point", "1:10,10", *TINY])
    line = one_error_line(err)
    assert rc == 2 and "00001.jpg" in line and "frame 1" in line and "--skip-bad-frames" in line
    assert not out.exists()  # E1: no masks, overlay or summary that look like a finished run

    rc, _, err = run_cli(["track", frames, "--out", out, "--point", "1:10,10", "--skip-bad-frames", *TINY])
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert [s["input_index"] for s in summary["skipped_frames"]] == [1]
    assert summary["skipped_frames"][0]["file"].endswith("00001.jpg")
    assert [f["input_index"] for f in summary["frames"]] == [0, 2]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["00000.png", "00001.png"]
    assert "warning: skipped 1 bad frame(s)" in err


def test_e2_image_of_another_size_mid_run(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 3)
    bgr = cv2.imread(str(frames / "00002.jpg"))
    cv2.imwrite(str(frames / "00002.jpg"), cv2.resize(bgr, None, fx=0.5, fy=0.5))
    out = tmp_path / "out"
    rc, _, err = run_cli(["track", frames, "--out", out, "--point", "1:10,10", *TINY])
    line = one_error_line(err)
    assert rc == 2 and "00002.jpg" in line and "all images must share one size" in line
    assert not out.exists()


def test_d3_e4_segment_stops_on_a_corrupt_image_and_leaves_nothing(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 3)
    truncate(frames / "00001.jpg", 1 / 3)
    out = tmp_path / "out"
    rc, _, err = run_cli(["segment", frames, "--out", out, "--point", "1:10,10", *TINY])
    line = one_error_line(err)
    assert rc == 2 and "00001.jpg" in line and "truncated or corrupt" in line
    assert not out.exists()  # E4: no labels of the earlier images, and no results.json missing

    rc, stdout, err = run_cli(["segment", frames, "--out", out, "--point", "1:10,10", "--skip-bad-frames", *TINY])
    assert rc == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert [s["input_index"] for s in doc["skipped"]] == [1] and len(doc["images"]) == 2
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["00000.png", "00002.png"]
    assert "segmented 2 image(s)" in stdout and "skipped 1 image(s)" in err


def test_e5_segment_on_an_empty_image_file_leaves_nothing(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 2)
    (frames / "00002.png").write_bytes(b"")
    out = tmp_path / "out"
    rc, _, err = run_cli(["segment", frames, "--out", out, "--point", "1:10,10", *TINY])
    assert rc == 2 and "00002.png" in one_error_line(err)
    assert not out.exists()


# ------------------------------------------------------------------------- 2. all-or-nothing outputs
def test_e3_existing_out_is_refused_and_overwrite_replaces_it_whole(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 5)
    out = tmp_path / "out"
    assert run_cli(["track", frames, "--out", out, "--point", "1:10,10", "--no-overlay", *TINY])[0] == 0
    assert len(list((out / "masks").iterdir())) == 5
    argv = ["track", frames, "--out", out, "--point", "1:10,10", "--no-overlay", "--max-frames", "3", *TINY]
    rc, _, err = run_cli(argv)
    assert rc == 2 and "--overwrite" in one_error_line(err)
    assert len(list((out / "masks").iterdir())) == 5  # untouched
    rc, stdout, err = run_cli([*argv, "--overwrite"])
    assert rc == 0, err
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:05d}.png" for i in range(3)]  # no stale 3, 4
    assert json.loads((out / "summary.json").read_text())["totals"]["frames"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_d6_segment_keeps_images_with_the_same_stem(data_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    bgr = cv2.imread(str(data_dir / "videos" / "bedroom" / "00000.jpg"))
    small = cv2.resize(bgr, (240, 135))
    cv2.imwrite(str(folder / "x.jpg"), small)
    cv2.imwrite(str(folder / "x.png"), np.ascontiguousarray(small[:, ::-1]))  # a different image
    out = tmp_path / "out"
    rc, stdout, err = run_cli(["segment", folder, "--out", out, "--point", "1:120,60", *TINY])
    assert rc == 0, err
    doc = json.loads((out / "results.json").read_text())
    labels = [e["label"] for e in doc["images"]]
    assert len(doc["images"]) == 2 and len(set(labels)) == 2
    assert sorted(p.name for p in (out / "labels").iterdir()) == sorted(Path(x).name for x in labels)
    assert set(doc["renamed"]) == {str(folder / "x.jpg"), str(folder / "x.png")}
    assert "share a name" in err


def test_c1_interrupted_segment_exits_130_and_leaves_nothing(data_dir, tmp_path, monkeypatch):
    import sam2_ros.cli.segment as segment

    frames = frames_folder(data_dir, tmp_path / "frames", 3)
    writes = []
    real = segment._write_png

    def write_then_interrupt(path, image):
        writes.append(path)
        if len(writes) == 3:  # Ctrl+C after the first image's outputs were written
            raise KeyboardInterrupt
        real(path, image)

    monkeypatch.setattr(segment, "_write_png", write_then_interrupt)
    out = tmp_path / "out"
    rc, _, err = run_cli(["segment", frames, "--out", out, "--point", "1:10,10", *TINY])
    assert rc == 130 and "Traceback" not in err and "interrupted" in err
    assert len(writes) == 3 and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_interrupted_track_of_a_file_exits_130_and_leaves_nothing(data_dir, tmp_path, monkeypatch):
    import sam2_ros.io.writers as writers

    frames = frames_folder(data_dir, tmp_path / "frames", 4)
    calls = []
    real = writers.MaskWriter.write

    def write_then_interrupt(self, index, labels):
        calls.append(index)
        if index == 2:
            raise KeyboardInterrupt
        real(self, index, labels)

    monkeypatch.setattr(writers.MaskWriter, "write", write_then_interrupt)
    out = tmp_path / "out"
    rc, _, err = run_cli(["track", frames, "--out", out, "--point", "1:10,10", *TINY])
    assert rc == 130 and "Traceback" not in err and "nothing written" in err
    assert calls == [0, 1, 2] and not out.exists()


@pytest.mark.parametrize("command", ["track", "segment", "download"])
def test_ctrl_c_while_loading_exits_130_without_traceback(command, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sam2_ros.factory.build_tracker", interrupted)
    monkeypatch.setattr("sam2_ros.cli.segment._build_model", interrupted)
    monkeypatch.setattr("sam2_ros.download.download", interrupted)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    argv = {
        "track": ["track", tmp_path / "in", "--out", tmp_path / "o", "--point", "1:1,1", *TINY],
        "segment": ["segment", tmp_path / "in", "--out", tmp_path / "o", "--point", "1:1,1", *TINY],
        "download": ["download", "sam2.1_hiera_tiny", "--out", tmp_path / "ck"],
    }[command]
    rc, _, err = run_cli(argv)
    assert rc == 130 and "Traceback" not in err and "interrupted" in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------- 3. warnings reach the console
def test_d5_track_without_prompts_warns(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 2)
    out = tmp_path / "out"
    rc, _, err = run_cli(["track", frames, "--out", out, "--no-overlay", *TINY])
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["warnings"]) == 1 and "nothing to track" in summary["warnings"][0]
    assert err.count("warning: ") == 1 and "nothing to track" in err


def test_segment_auto_with_no_masks_warns(data_dir, tmp_path):
    frames = frames_folder(data_dir, tmp_path / "frames", 1)
    out = tmp_path / "out"
    # Meta's default filters drop every mask of random weights.
    rc, _, err = run_cli(["segment", frames, "--out", out, "--auto", "--points-per-side", "2", *TINY])
    assert rc == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["images"][0]["objects"] == []
    assert any("found no masks" in w for w in doc["warnings"]) and "warning: --auto found no masks" in err


def test_track_auto_with_no_objects_warns(data_dir, tmp_path, monkeypatch):
    import functools

    import sam2_ros.image as image_api

    # A 2 x 2 grid keeps it quick; Meta's default filters still drop every mask of random weights.
    monkeypatch.setattr(
        image_api, "prompt_everything", functools.partial(image_api.prompt_everything, points_per_side=2)
    )
    frames = frames_folder(data_dir, tmp_path / "frames", 2)
    out = tmp_path / "out"
    rc, _, err = run_cli(["track", frames, "--out", out, "--auto", "--no-overlay", *TINY])
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"][0]["objects"] == []
    assert any("--auto found no objects" in w for w in summary["warnings"]) and "warning: --auto found no" in err


def _annotate_in_process(monkeypatch):
    """``annotate`` with the driver's in-process engine instead of Ray (same worker code, no cluster)."""
    from sam2_ros.annotate import runner

    def local(settings, jobs, manifest, run, *args, progress=True, **kwargs):
        return runner.run_local(settings, jobs, manifest, run, progress=progress)

    monkeypatch.setattr(runner, "run_ray", local)


def test_d4_d7_annotate_fails_a_truncated_input_and_counts_warnings(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    pytest.importorskip("pycocotools")
    _annotate_in_process(monkeypatch)
    bad = frames_folder(data_dir, tmp_path / "bad", 3)
    truncate(bad / "00001.jpg", 1 / 3)
    late = frames_folder(data_dir, tmp_path / "late", 3)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps(
            {
                "bad": {0: {1: {"points": [[10, 10]]}}},
                "late": {0: {1: {"points": [[10, 10]]}}, 50: {2: {"points": [[20, 20]]}}},
            }
        )
    )
    out = tmp_path / "ds"
    rc, stdout, err = run_cli(["annotate", bad, late, "--out", out, "--prompts", prompts, "--quiet", *TINY])
    assert rc == 1, err
    doc = json.loads((out / "manifest.json").read_text())
    entries = {Path(e["input"]).name: e for e in doc["inputs"].values()}
    assert entries["bad"]["status"] == "failed" and "00001.jpg" in entries["bad"]["error"]  # D4
    assert "\n" not in entries["bad"]["error"] and len(entries["bad"]["error"]) < 400
    assert entries["late"]["status"] == "done" and "never applied" in entries["late"]["warnings"][0]
    assert "1 failed, 1 with warnings" in stdout  # D7: on the console, counted
    assert "warning: " in err and "never applied" in err and "failed: " in err


def test_annotate_checks_image_size_before_ray_starts(data_dir, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    pytest.importorskip("pycocotools")
    started = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: started.append(1))
    frames = frames_folder(data_dir, tmp_path / "frames", 1)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps({"frames": {0: {1: {"points": [[1, 1]]}}}}))
    rc, _, err = run_cli(
        ["annotate", frames, "--out", tmp_path / "ds", "--prompts", prompts, "--random-weights", "--image-size", "100"]
    )
    assert rc == 2 and "--image-size" in one_error_line(err) and "multiple of 32" in err
    assert started == []


# ------------------------------------------------------------------------------- 5. progress
def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_bag_script_and_replay_progress_bar(data_dir, tmp_path):
    make_sample_bag = _load_script("make_sample_bag")
    bag = tmp_path / "bedroom.mcap"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            make_sample_bag.main([str(data_dir / "videos" / "bedroom"), str(bag), "--frames", "3", "--width", "96"])
            == 0
        )
    rc, stdout, err = run_cli(
        ["track", "--bag", bag, "--out-bag", tmp_path / "out.mcap", "--point", "1:40,30", "--no-overlay", *TINY]
    )
    assert rc == 0, err
    assert "replayed 3 images of /camera/image_raw" in stdout
    assert "replay: 100%" in err and "3/3" in err  # the same tqdm bar as `track`


# ------------------------------------------------------------------------------ 6. first five minutes
def test_negative_object_id_gets_the_prompt_parsers_error(tmp_path):
    rc, _, err = run_cli(["track", tmp_path, "--out", tmp_path / "o", "--point", "-3:10,10", *TINY])
    assert rc == 2 and "expected one argument" not in err
    assert "invalid point '-3:10,10'" in err and "OBJ must be in 1..255" in err


def test_text_file_as_checkpoint_is_one_clear_line(tmp_path):
    ckpt = tmp_path / "notes.pt"
    ckpt.write_text("hello, not a checkpoint\n")
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "0.png"), np.zeros((8, 8, 3), np.uint8))
    for command in ("track", "segment"):
        rc, _, err = run_cli(
            [command, tmp_path / "in", "--out", tmp_path / command, "--point", "1:1,1", "--checkpoint", ckpt]
        )
        line = one_error_line(err)
        assert rc == 2 and str(ckpt) in line and "not a PyTorch .pt / .safetensors file" in line
        assert "sam2-ros download" in line and "KeyError: 101" not in line
        assert not (tmp_path / command).exists()


def test_download_errors_name_the_users_file_not_the_temp_file(tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("not a checkpoint")
    out = tmp_path / "ck"
    rc, _, err = run_cli(["download", "sam2.1_hiera_tiny", "--url", bogus, "--out", out, "--quiet"])
    line = one_error_line(err)
    assert rc == 2 and ".part" not in line and str(out / "sam2.1_hiera_tiny.pt") in line
    assert sorted(p.name for p in out.iterdir()) == []  # nothing saved, no temp file left


def test_segment_help_explains_the_auto_options(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = capsys.readouterr().out
    for option, default in (
        ("--points-per-side", "32"),
        ("--points-per-batch", "64"),
        ("--pred-iou-thresh", "0.8"),
        ("--stability-score-thresh", "0.95"),
        ("--box-nms-thresh", "0.7"),
        ("--crop-n-layers", "0"),
    ):
        described = text.split(f"\n  {option} ", 1)[1].split("\n  -", 1)[0]  # its entry, not the usage line
        assert f"(default {default})" in " ".join(described.split()), option
