"""``sam2-ros annotate`` as a user runs it, in a subprocess: a worker killed mid-input, and an existing cluster.

* A worker process killed with SIGKILL while it writes an input: the input is retried on a new
  worker in the same run (``attempts``/``worker_deaths`` in the manifest); after ``MAX_ATTEMPTS``
  deaths it fails with one short line; no ``.partial-*`` folder is left; Ray's chatter stays off
  the console.
* ``--ray-address`` to a cluster started separately with ``ray start --head`` (as a user with a
  cluster would; token authentication switched off for that head with ``RAY_AUTH_MODE=disabled``).

Both start Ray and several workers on 2 cores: slow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--random-weights", "--model", "sam2.1_hiera_t", "--image-size", "128", "--device", "cpu"]


def frames_folder(data_dir: Path, folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        bgr = cv2.imread(str(data_dir / "videos" / "bedroom" / f"{i:05d}.jpg"))
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.resize(bgr, (240, 135)))
    return folder


def prompt_file(path: Path, names: list[str]) -> Path:
    path.write_text(json.dumps({name: {0: {1: {"points": [[100, 60]]}}} for name in names}))
    return path


def cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "sam2_ros", *(str(a) for a in args)]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return seen


def annotator_pids(root_pid: int) -> list[int]:
    """Ray worker processes running the annotator actor, started (indirectly) by ``root_pid``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::RayAnnotator") and root_pid in _ancestors(int(proc.name)):
            pids.append(int(proc.name))
    return pids


class Killer(threading.Thread):
    """SIGKILLs the busy worker each time a new attempt of an input has written a label PNG, up to ``plan[name]``."""

    def __init__(self, out: Path, root_pid: int, plan: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.out, self.root_pid, self.plan = out, root_pid, dict(plan)
        self.seen: set[str] = set()
        self.kills: list[tuple[str, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for partial in self.out.glob(".partial-*") if self.out.is_dir() else []:
                name = next((n for n in self.plan if partial.name.startswith(f".partial-{n}-")), None)
                if name is None or partial.name in self.seen or not self.plan[name]:
                    continue
                if not list((partial / "masks").glob("*.png")):
                    continue  # not mid-input yet
                pids = annotator_pids(self.root_pid)
                if len(pids) != 1:
                    continue
                self.seen.add(partial.name)
                os.kill(pids[0], signal.SIGKILL)
                self.plan[name] -= 1
                self.kills.append((name, pids[0]))
            time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_worker_costs_a_retry_not_the_input(data_dir, tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("pycocotools")
    for name in ("alpha", "beta"):
        frames_folder(data_dir, tmp_path / name, 12)
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        cli(
            "annotate",
            tmp_path / "alpha",
            tmp_path / "beta",
            "--out",
            out,
            "--prompts",
            prompt_file(tmp_path / "p.json", ["alpha", "beta"]),
            "--num-workers",
            1,
            "--quiet",
            *TINY,
        ),
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = Killer(out, proc.pid, {"alpha": 1, "beta": 3})  # alpha: retried once; beta: every attempt dies
    killer.start()
    try:
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        killer.stop.set()
        if proc.poll() is None:
            proc.kill()
    assert [n for n, _ in killer.kills] == ["alpha", "beta", "beta", "beta"], (killer.kills, stderr[-3000:])
    assert proc.returncode == 1, stderr[-3000:]
    doc = json.loads((out / "manifest.json").read_text())
    entries = {Path(e["input"]).name: e for e in doc["inputs"].values()}
    alpha, beta = entries["alpha"], entries["beta"]
    assert alpha["status"] == "done" and alpha["frames"] == 12
    assert (alpha["attempts"], alpha["worker_deaths"]) == (2, 1)
    assert len(list((out / alpha["output"] / "masks").glob("*.png"))) == 12
    assert beta["status"] == "failed" and (beta["attempts"], beta["worker_deaths"]) == (3, 3)
    assert beta["error"].startswith("its worker died 3 times: ") and len(beta["error"]) < 260, beta["error"]
    assert "\n" not in beta["error"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the dead workers' partial folders
    assert "annotated 1 inputs" in stdout and "1 failed" in stdout
    assert "retried: " in stderr and "failed: " in stderr
    assert "Token authentication" not in stderr and "Started a local Ray instance" not in stderr
    assert all(len(line) < 400 for line in stderr.splitlines()), stderr[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_joins_a_cluster_started_with_ray_start(data_dir, tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("pycocotools")
    frames_folder(data_dir, tmp_path / "gamma", 3)
    port = _free_port()
    ray_tmp = Path(f"/tmp/r{port}")  # short: Ray's socket paths must fit 107 characters
    head = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={ray_tmp}",
            "--block",
        ],
        env=env(RAY_AUTH_MODE="disabled"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped below without touching other clusters
    )
    try:
        out = tmp_path / "ds"
        deadline = time.monotonic() + 120
        proc = None
        while time.monotonic() < deadline:
            proc = subprocess.run(
                cli(
                    "annotate",
                    tmp_path / "gamma",
                    "--out",
                    out,
                    "--prompts",
                    prompt_file(tmp_path / "p.json", ["gamma"]),
                    "--ray-address",
                    f"127.0.0.1:{port}",
                    "--quiet",
                    *TINY,
                ),
                cwd=REPO,
                env=env(RAY_AUTH_MODE="disabled"),
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 2 or "connect" not in proc.stderr.lower():
                break
            time.sleep(3)  # the head is still starting
        assert proc is not None and proc.returncode == 0, proc.stderr[-3000:]
        doc = json.loads((out / "manifest.json").read_text())
        assert doc["last_run"]["ray_address"] == f"127.0.0.1:{port}"
        (entry,) = doc["inputs"].values()
        assert entry["status"] == "done" and entry["frames"] == 3
        assert "Traceback" not in proc.stderr and "Token authentication" not in proc.stderr
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # what SIGTERM left (Ray's shutdown can hang)
        except ProcessLookupError:
            pass
        subprocess.run(["rm", "-rf", str(ray_tmp)], check=False)
