"""One input, start to finish, on a tracker loaded once: what each Ray actor (or the benchmark, in-process) runs.

No Ray here: :class:`Annotator` is a plain class that ``runner`` turns into an actor. Frames are
read, tracked and written by the worker itself, straight into the dataset folder; only small
manifest entries and progress counts go back to the driver.

Outputs of an input are written into ``DATASET/.partial-<name>-<token>/`` and renamed to
``DATASET/<name>/`` when complete, so a folder named after an input is always a whole one.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2_ros.annotate.inputs import InputSpec, content_sha256, open_input
from sam2_ros.annotate.manifest import DONE, FAILED, now
from sam2_ros.annotate.prompts import AUTO, DETECTIONS, FILE, AutoPlan, FilePlan, PromptPlan, read_detections
from sam2_ros.errors import InputError
from sam2_ros.factory import TrackerOptions
from sam2_ros.utils.files import REPLACED_PREFIX, publish_dir

PARTIAL_PREFIX = ".partial-"
#: Seconds between progress reports to the driver (a report is two integers).
REPORT_PERIOD_S = 0.5

#: progress(frames_done_delta, frames_total_delta)
Report = Callable[[int, int], None]


@dataclass(frozen=True)
class AnnotateSettings:
    """What every input of a run shares (model, limits, topics)."""

    tracker: TrackerOptions
    out: Path
    max_frames: int | None = None
    image_topic: str | None = None
    detections_topic: str | None = None
    auto_args: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # torch CPU threads per worker (None: torch's default)
    skip_bad_frames: bool = False  # skip undecodable images / keep a short video's frames (recorded)


@dataclass(frozen=True)
class InputJob:
    """One input to annotate, as the driver hands it to a worker (small: no frames)."""

    spec: InputSpec
    fingerprint: str
    options_key: str
    prompt_source: str  # FILE, DETECTIONS or AUTO
    prompt_entry: dict | None = None  # the prompt-file entry (FILE)
    prompt_where: str = ""  # "prompt file X: key", for error messages
    done_sha256: str | None = None  # content hash of a finished entry with the same options: skip if unchanged


class _Throttled:
    """Batches progress counts so a worker sends at most a couple of reports a second."""

    def __init__(self, report: Report | None) -> None:
        self.report = report
        self.frames = self.total = 0
        self.last = time.monotonic()

    def add(self, frames: int = 0, total: int = 0) -> None:
        self.frames += frames
        self.total += total
        if time.monotonic() - self.last >= REPORT_PERIOD_S:
            self.flush()

    def flush(self) -> None:
        if self.report is not None and (self.frames or self.total):
            self.report(self.frames, self.total)
        self.frames = self.total = 0
        self.last = time.monotonic()


class Annotator:
    """Loads the model once; ``annotate(job)`` processes one whole input and returns its manifest entry."""

    def __init__(self, settings: AnnotateSettings, report: Report | None = None) -> None:
        from sam2_ros.factory import build_tracker  # noqa: PLC0415 - loaded in the Ray worker, never in the driver

        if settings.threads:
            import torch  # noqa: PLC0415 - loaded in the Ray worker, never in the driver

            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.progress = _Throttled(report)
        built = build_tracker(settings.tracker)
        self.tracker = built.tracker
        self.model_name, self.weights = built.model_name, built.weights
        self._generator: Any = None

    def info(self) -> dict[str, Any]:
        """Where this worker runs (also a cheap call that proves the model loaded)."""
        backend = self.tracker.backend
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "backend": backend.name,
            "device": str(backend.device),
            "model": self.model_name,
        }

    def annotate(self, job: InputJob) -> dict[str, Any]:
        """The input's manifest entry; failures are recorded in it, never raised (the other inputs go on)."""
        spec, t0 = job.spec, time.perf_counter()
        entry: dict[str, Any] = {
            "input": str(spec.path),
            "kind": spec.kind,
            "output": spec.name,
            "fingerprint": job.fingerprint,
            "options_key": job.options_key,
            "worker": {k: v for k, v in self.info().items() if k in ("host", "pid", "device")},
        }
        partial = self.settings.out / f"{PARTIAL_PREFIX}{spec.name}-{uuid.uuid4().hex[:8]}"
        try:
            entry["sha256"] = content_sha256(spec.path, spec.kind)
            hash_s = time.perf_counter() - t0
            if (
                job.done_sha256 is not None
                and entry["sha256"] == job.done_sha256
                and (self.settings.out / spec.name).is_dir()
            ):
                return {
                    **entry,
                    "status": DONE,
                    "skipped": "content unchanged",
                    "timings": {"hash_s": round(hash_s, 3)},
                }
            partial.mkdir(parents=True)
            entry.update(self._run(job, partial))
            publish_dir(partial, self.settings.out / spec.name)  # an older version of the input is replaced
            entry["status"] = DONE
            entry["timings"]["hash_s"] = round(hash_s, 3)
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest; the run goes on
            shutil.rmtree(partial, ignore_errors=True)
            entry.update(status=FAILED, error=error_line(exc))
        finally:
            self.progress.flush()
        entry["timings"] = {**entry.get("timings", {}), "wall_s": round(time.perf_counter() - t0, 3)}
        entry["finished"] = now()
        return entry

    def _plan(self, job: InputJob) -> PromptPlan:
        if job.prompt_source == FILE:
            return FilePlan(job.prompt_entry or {}, job.prompt_where)
        if job.prompt_source == DETECTIONS:
            return read_detections(job.spec.path, self.settings.detections_topic or "")
        if job.prompt_source == AUTO:
            if self._generator is None:
                from sam2_ros.image import AutomaticMaskGenerator  # noqa: PLC0415 - loaded in the Ray worker, never in the driver

                self._generator = AutomaticMaskGenerator(self.tracker.backend.model, **self.settings.auto_args)
            return AutoPlan(self._generator.generate, self.settings.tracker.max_objects)
        raise InputError(f"no prompts for {job.spec.spec}")

    def _run(self, job: InputJob, out: Path) -> dict[str, Any]:
        """Track the input into ``out``: label PNGs and annotations.json; returns counts and timings."""

        import torch  # noqa: PLC0415 - loaded in the Ray worker, never in the driver

        from sam2_ros.annotate.coco import CocoWriter  # noqa: PLC0415 - loaded in the Ray worker, never in the driver
        from sam2_ros.io.prompts import track_frame  # noqa: PLC0415 - loaded in the Ray worker, never in the driver
        from sam2_ros.io.writers import MaskWriter, frame_name  # noqa: PLC0415 - loaded in the Ray worker, never in the driver

        spec, settings = job.spec, self.settings
        plan = self._plan(job)
        self.tracker.reset()
        masks = MaskWriter(out)
        done, annotations, objects, frame_hw, stopped_by = 0, 0, set(), None, "end of input"
        with open_input(spec, settings.image_topic, settings.skip_bad_frames) as source:
            total = min(filter(None, (source.frame_count, settings.max_frames)), default=0)
            self.progress.add(total=total)
            paths = getattr(source, "paths", None)
            coco = CocoWriter(
                out / "annotations.json",
                {
                    "description": f"sam2-ros annotate: {spec.path}",
                    "input": str(spec.path),
                    "kind": spec.kind,
                    "model": self.model_name,
                    "date_created": now(),
                },
            )
            t_loop = time.perf_counter()
            try:
                frames = source if settings.max_frames is None else itertools.islice(source, settings.max_frames)
                for index, frame in enumerate(frames):
                    stamp = getattr(source, "stamp_ns", None)
                    result, _ = track_frame(self.tracker, frame, plan.for_frame(index, frame, stamp))
                    labels = result.label_image()
                    masks.write(index, labels)
                    probabilities = torch.sigmoid(result.scores.float()).cpu().tolist()
                    name = str(paths[index]) if paths is not None else f"{spec.path.name}#{index:05d}"
                    annotations += coco.add_frame(index, labels, list(result.object_ids), probabilities, name, stamp)
                    objects.update(result.object_ids)
                    frame_hw, done = list(labels.shape), index + 1
                    self.progress.add(frames=1)
            except BaseException:
                coco.abort()
                raise
            coco.close()
        if done == 0:
            raise InputError(f"{spec.path}: no frames")
        if settings.max_frames is not None and done == settings.max_frames:
            stopped_by = "max frames"
        if total and done != total:  # the container's count was off: settle the progress bar
            self.progress.add(total=done - total)
        loop_s = time.perf_counter() - t_loop
        extra: dict[str, Any] = {}
        if source.skipped:
            extra["skipped_frames"] = source.skipped
        if source.ended_early:
            extra["ended_early"] = source.ended_early
        return {
            "prompts": plan.record(),
            "warnings": [*plan.warnings(done), *source.problems()],
            **extra,
            "frames": done,
            "frame_hw": frame_hw,
            "stopped_by": stopped_by,
            "objects": len(objects),
            "annotations": annotations,
            "labels": f"{spec.name}/masks/{frame_name(0, '.png')}..",
            "coco": f"{spec.name}/annotations.json",
            "timings": {"track_s": round(loop_s, 3), "fps": round(done / loop_s, 3) if loop_s > 0 else None},
        }


def error_line(exc: BaseException) -> str:
    """An input's error for the manifest and console: one short line (user errors without their class name)."""
    from sam2_ros.errors import UserError  # noqa: PLC0415 - keeps this module's imports to what a worker needs

    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


def remove_partials(root: Path) -> int:
    """Delete what interrupted runs left (``.partial-*`` and ``.old-*`` folders); returns how many."""
    stale = (
        [p for p in root.iterdir() if p.is_dir() and p.name.startswith((PARTIAL_PREFIX, REPLACED_PREFIX))]
        if root.is_dir()
        else []
    )
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)
