"""Run classes of bad input through the ``sam2-ros`` commands and tabulate what a user gets.

    python scripts/probe_bad_inputs.py                       # this checkout
    python scripts/probe_bad_inputs.py --code /path/to/other/checkout --label main

Each class is one command run in a subprocess (random weights, 128-pixel model input, a few
small frames) and is classed by what the user sees and what is left on disk:

* ``clear``: one ``error:`` line naming the problem, exit 2 (or 1 for ``annotate`` with the input
  recorded as failed), and nothing half-written;
* ``sensible``: the run finished and said what was wrong (a ``warning:`` line), or Ctrl+C gave exit
  130 with nothing half-written;
* ``silently wrong``: exit 0 and no word about the problem;
* ``partial output``: it failed but left files that look like a (finished) run;
* ``unclear message``: one line, but it does not name the user's own file or what to do (``expected
  one argument``, ``KeyError: 101``, a hidden ``.part`` file);
* ``traceback``: a Python traceback.

Needs the shared data (``SAM2_ROS_DATA``, default ``../shared/data``). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAM2_ROS_DATA", REPO.parent / "shared" / "data"))
TINY = ["--random-weights", "--image-size", "128", "--device", "cpu"]
BAD_PHRASES = ("expected one argument", "KeyError: 101", ".part")


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def frames(folder: Path, count: int, width: int = 240) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        bgr = cv2.imread(str(DATA / "videos" / "bedroom" / f"{i:05d}.jpg"))
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.resize(bgr, (width, width * 9 // 16)))
    return folder


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


class Probe:
    def __init__(self, code: Path, work: Path) -> None:
        self.code, self.work = code, work
        self.rows: list[tuple[str, str, str, float, str]] = []

    def run(self, argv: list, sigint_when: Callable[[], bool] | None = None) -> Outcome:
        env = {**os.environ, "PYTHONPATH": str(self.code), "SAM2_ROS_DATA": str(DATA)}
        cmd = [sys.executable, "-m", "sam2_ros", *(str(a) for a in argv)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=self.work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if sigint_when is not None:
            deadline = time.monotonic() + 300
            while proc.poll() is None and not sigint_when() and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=900)
        return Outcome(proc.returncode, stdout, stderr, time.perf_counter() - t0)

    def record(self, name: str, command: str, o: Outcome, left: bool, problem_said: bool, note: str = "") -> None:
        errors = [line for line in o.stderr.splitlines() if "error:" in line]
        if "Traceback" in o.stderr:
            verdict = "traceback"
        elif o.rc not in (0, 130) and left:
            verdict = "partial output"
        elif o.rc == 130:
            verdict = "partial output" if left else "sensible (exit 130, nothing left)"
        elif o.rc == 0:
            verdict = "sensible (warned)" if problem_said else "silently wrong"
        elif any(p in o.stderr for p in BAD_PHRASES):
            verdict = "unclear message"
        elif o.rc == 2 and len(errors) == 1:
            verdict = "clear (one line, exit 2)"
        elif o.rc == 1 and problem_said:
            verdict = "clear (input failed, said)"
        else:
            verdict = f"other (exit {o.rc})"
        said = (errors[-1] if errors else next((x for x in o.stderr.splitlines() if "warning:" in x), "")).strip()
        self.rows.append((name, command, verdict, o.seconds, note or said[:150]))
        print(f"{name}: {verdict} ({o.seconds:.1f} s) {said[:150]}", file=sys.stderr)

    # ------------------------------------------------------------------ the classes
    def all(self) -> None:
        w = self.work
        # truncated mp4: the first tenth of a real clip
        video = w / "trunc.mp4"
        shutil.copyfile(DATA / "videos" / "08_driving.mp4", video)
        truncate(video, 0.1)
        o = self.run(["track", video, "--out", w / "o_video", "--point", "1:10,10", "--no-overlay", *TINY])
        self.record("truncated mp4", "track", o, o.rc != 0 and bool(files_under(w / "o_video")), "warning:" in o.stderr)

        bad = frames(w / "badjpeg", 4)
        truncate(bad / "00002.jpg", 1 / 3)
        o = self.run(["track", bad, "--out", w / "o_tj", "--point", "1:10,10", *TINY])
        self.record("truncated JPEG", "track", o, o.rc != 0 and bool(files_under(w / "o_tj")), "warning:" in o.stderr)
        o = self.run(["segment", bad, "--out", w / "o_sj", "--point", "1:10,10", *TINY])
        self.record("truncated JPEG", "segment", o, o.rc != 0 and bool(files_under(w / "o_sj")), "warning:" in o.stderr)

        plain = frames(w / "plain", 3)
        o = self.run(["track", plain, "--out", w / "o_np", "--no-overlay", *TINY])
        self.record("no prompts", "track", o, False, "warning:" in o.stderr)

        o = self.run(["segment", plain, "--out", w / "o_auto", "--auto", "--points-per-side", "2", *TINY])
        self.record("--auto finds 0 masks", "segment", o, False, "warning:" in o.stderr)

        coll = w / "collide"
        coll.mkdir()
        img = cv2.imread(str(plain / "00000.jpg"))
        cv2.imwrite(str(coll / "x.jpg"), img)
        cv2.imwrite(str(coll / "x.png"), np.ascontiguousarray(img[:, ::-1]))
        o = self.run(["segment", coll, "--out", w / "o_coll", "--point", "1:50,50", *TINY])
        kept = len(files_under(w / "o_coll" / "labels"))
        self.record("name collision x.jpg/x.png", "segment", o, False, kept == 2 and "warning:" in o.stderr, "")
        self.rows[-1] = (*self.rows[-1][:4], f"{kept} label file(s) for 2 images")

        # rerun into the --out of an earlier (interrupted) run holding 5 masks
        old = w / "o_old"
        (old / "masks").mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(old / "masks" / f"{i:05d}.png"), np.zeros((4, 4), np.uint8))
        o = self.run(["track", plain, "--out", old, "--point", "1:10,10", "--no-overlay", *TINY])
        masks = len(files_under(old / "masks"))
        stale = o.rc == 0 and masks != 3
        self.record("rerun into old --out", "track", o, False, not stale and "warning:" in o.stderr)
        note = f"masks/ holds {masks} files after a 3-frame run" if o.rc == 0 else self.rows[-1][4]
        self.rows[-1] = (*self.rows[-1][:4], note)

        sized = frames(w / "sized", 4)
        cv2.imwrite(str(sized / "00002.jpg"), cv2.resize(cv2.imread(str(sized / "00002.jpg")), (120, 67)))
        o = self.run(["track", sized, "--out", w / "o_sz", "--point", "1:10,10", *TINY])
        self.record("mis-sized image mid-run", "track", o, bool(files_under(w / "o_sz")), "warning:" in o.stderr)
        o = self.run(["segment", bad, "--out", w / "o_sc", "--point", "1:10,10", *TINY])
        self.record(
            "corrupt image mid-run", "segment", o, o.rc != 0 and bool(files_under(w / "o_sc")), "warning:" in o.stderr
        )

        empty = frames(w / "empty", 3)
        (empty / "00001.png").write_bytes(b"")
        o = self.run(["segment", empty, "--out", w / "o_se", "--point", "1:10,10", *TINY])
        self.record("empty image file mid-run", "segment", o, bool(files_under(w / "o_se")), "warning:" in o.stderr)

        many = frames(w / "many", 12)
        out = w / "o_int"

        def started() -> bool:
            staged = list(w.glob(".staging-o_int-*/labels/*.png"))
            return bool(staged or files_under(out / "labels"))

        o = self.run(["segment", many, "--out", out, "--point", "1:10,10", *TINY], sigint_when=started)
        self.record("SIGINT mid-run", "segment", o, bool(files_under(out)) or bool(list(w.glob(".staging-*"))), False)

        text = w / "notes.pt"
        text.write_text("hello\n")
        o = self.run(["segment", plain, "--out", w / "o_ck", "--point", "1:10,10", "--checkpoint", text])
        self.record("text file as --checkpoint", "segment", o, bool(files_under(w / "o_ck")), False)

        o = self.run(["track", plain, "--out", w / "o_pt", "--point", "-3:10,10", *TINY])
        self.record("bad point syntax -3:10,10", "track", o, False, False)

        o = self.run(["download", "sam2.1_hiera_tiny", "--url", text, "--out", w / "ck", "--quiet"])
        self.record("not a checkpoint at --url", "download", o, bool(files_under(w / "ck")), False)

        prompts = w / "prompts.json"
        prompts.write_text(json.dumps({"plain": {0: {1: {"points": [[10, 10]]}}}}))
        o = self.run(
            ["annotate", plain, "--out", w / "ds_sz", "--prompts", prompts, "--random-weights", "--image-size", "100"]
        )
        self.record("--image-size 100", "annotate", o, False, False, f"error after {o.seconds:.1f} s")

        prompts.write_text(
            json.dumps(
                {
                    "badjpeg": {0: {1: {"points": [[10, 10]]}}},
                    "plain": {0: {1: {"points": [[10, 10]]}}, 50: {2: {"points": [[20, 20]]}}},
                }
            )
        )
        o = self.run(["annotate", bad, plain, "--out", w / "ds", "--prompts", prompts, "--quiet", *TINY])
        try:
            entries = {
                Path(e["input"]).name: e
                for e in json.loads((w / "ds" / "manifest.json").read_text())["inputs"].values()
            }
        except (OSError, ValueError, KeyError):
            entries = {}
        b = entries.get("badjpeg", {})
        o_b = Outcome(0 if b.get("status") == "done" else 1, o.stdout, o.stderr, o.seconds)
        self.record("truncated JPEG", "annotate", o_b, False, "badjpeg" in o.stderr, f"status {b.get('status')}")
        late_said = "never applied" in o.stderr
        o_p = Outcome(0, o.stdout, o.stderr if late_said else "", o.seconds)
        self.record("prompt on frame 50 of 3", "annotate", o_p, False, late_said, f"console says it: {late_said}")
        self.record_chatter(o)

    def record_chatter(self, o: Outcome) -> None:
        chatter = "Token authentication" in o.stderr
        self.rows.append(("Ray start-up chatter", "annotate", "printed" if chatter else "none", o.seconds, ""))

    def table(self, label: str) -> str:
        lines = [
            f"| class ({label}) | command | outcome | s | what the user saw |",
            "|---|---|---|---|---|",
        ]
        for name, command, verdict, seconds, said in self.rows:
            lines.append(f"| {name} | {command} | {verdict} | {seconds:.1f} | {said.replace('|', '/')} |")
        return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--code", type=Path, default=REPO, help="checkout whose sam2_ros to run (default: this one)")
    p.add_argument("--label", default="this checkout", help="name for the table's header")
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        probe = Probe(args.code.resolve(), Path(tmp))
        probe.all()
    table = probe.table(args.label)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
