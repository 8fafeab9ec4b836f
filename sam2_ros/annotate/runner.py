"""The Ray driver of ``sam2-ros annotate``: actors that load the model once and annotate whole inputs.

The driver hands out small :class:`~sam2_ros.annotate.worker.InputJob` s, one at a time per
actor (a fast worker simply gets more inputs), records each returned manifest entry at once
(atomically), and shows one progress bar over frames, fed by a tiny counter actor the workers
report to a couple of times a second. Frames never pass through the driver. Ctrl+C kills the
actors, removes their unfinished folders and leaves the manifest of what is complete.

Ray is imported here only, when a run starts: ``sam2-ros track`` and the node never load it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from typing import Any

from tqdm import tqdm

from sam2_ros.annotate.manifest import DONE, FAILED, DatasetManifest, now
from sam2_ros.annotate.worker import AnnotateSettings, Annotator, InputJob, remove_partials
from sam2_ros.errors import UsageError, UserError

#: Seconds between progress-bar refreshes (and the driver's longest wait for a finished input).
POLL_S = 0.25
#: Tries per input when its worker process dies (killed, out of memory): each on a new worker.
MAX_ATTEMPTS = 3


def import_ray() -> Any:
    """``ray``, or a one-line error saying how to get it (Ray is the optional ``annotate`` extra)."""
    try:
        import ray  # noqa: PLC0415 - optional extra (annotate), loaded only when used
    except ImportError as exc:
        raise UserError(
            f"sam2-ros annotate runs on Ray, which is not installed ({exc}); "
            f"install it with: pip install 'sam2_ros[annotate]'"
        ) from None
    return ray


class ProgressCounter:
    """Frames done and frames expected over the whole run (a Ray actor; two integers of state)."""

    def __init__(self) -> None:
        self.frames = 0
        self.total = 0

    def add(self, frames: int, total: int) -> None:
        self.frames += frames
        self.total += total

    def get(self) -> tuple[int, int]:
        return self.frames, self.total


class RayAnnotator(Annotator):
    """The actor: an :class:`Annotator` whose progress goes to the run's counter actor."""

    def __init__(self, settings: AnnotateSettings, counter: Any) -> None:
        super().__init__(settings, report=lambda frames, total: counter.add.remote(frames, total))


class _Bar:
    """One tqdm bar over frames, with inputs done/failed in its postfix."""

    def __init__(self, inputs: int, enabled: bool) -> None:

        self.inputs, self.done, self.failed, self._changed = inputs, 0, 0, True
        self.bar = tqdm(total=0, unit="frame", desc="annotate", dynamic_ncols=True, disable=not enabled)

    def update(self, frames: int, total: int) -> None:
        if (frames, max(total, frames)) == (self.bar.n, self.bar.total) and not self._changed:
            return
        self._changed = False
        self.bar.total = max(total, frames)
        self.bar.n = frames
        self.bar.set_postfix_str(
            f"inputs {self.done + self.failed}/{self.inputs}" + (f", {self.failed} failed" if self.failed else ""),
            refresh=False,
        )
        self.bar.refresh()

    def finished(self, entry: dict[str, Any]) -> None:
        self._changed = True
        if entry.get("status") == DONE:
            self.done += 1
        else:
            self.failed += 1

    def close(self) -> None:
        self.bar.close()


def run_ray(
    settings: AnnotateSettings,
    jobs: list[InputJob],
    manifest: DatasetManifest,
    run: dict[str, Any],
    address: str | None = None,
    num_workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Annotate ``jobs`` on Ray; returns their manifest entries (also recorded in ``manifest`` as they come)."""
    ray = import_ray()
    t0 = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        # Ray's start-up chatter (the token authentication notice, "Started a local Ray instance")
        # stays off the console: errors only, and the workers' logs stay in Ray's log folder.
        kw: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR)
        if address:
            ray.init(address=address, **kw)
        else:  # a local cluster with room for every worker (oversubscribing is the user's choice)
            ray.init(
                num_cpus=max(os.cpu_count() or 1, math.ceil(num_workers * cpus_per_worker)),
                include_dashboard=False,
                **kw,
            )
    timings = run["last_run"].setdefault("timings", {})
    timings["ray_init_s"] = _since(t0)
    actors: list[Any] = []
    running: dict[Any, tuple[Any, InputJob, float]] = {}
    bar = _Bar(len(jobs), progress)
    try:
        gpus = _gpus(ray, gpus_per_worker)
        _check_resources(ray, num_workers, cpus_per_worker, gpus)
        run["last_run"].update(
            engine="ray",
            ray_address=address or "local",
            num_workers=num_workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus,
        )
        counter = ray.remote(num_cpus=0)(ProgressCounter).remote()
        actor_class = ray.remote(RayAnnotator).options(num_cpus=cpus_per_worker, num_gpus=gpus)

        def new_actor() -> Any:
            actor = actor_class.remote(settings, counter)
            actors.append(actor)
            return actor

        t1 = time.perf_counter()
        idle = [new_actor() for _ in range(min(num_workers, len(jobs)))]
        try:  # model loading errors (corrupt checkpoint, no GPU) are the run's, not an input's
            workers = ray.get([a.info.remote() for a in idle])
        except ray.exceptions.RayError as exc:
            raise UserError(f"a worker could not load the model: {_first_line(exc)}") from None
        run["last_run"]["workers"] = workers
        timings["workers_ready_s"], t2 = _since(t1), time.perf_counter()
        pending, entries = deque(jobs), []
        deaths: dict[str, list[str]] = {}  # input name -> one line per worker that died on it
        while pending or running:
            while idle and pending:
                actor, job = idle.pop(), pending.popleft()
                running[actor.annotate.remote(job)] = (actor, job, time.perf_counter())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in ready:
                actor, job, submitted = running.pop(ref)
                died = deaths.setdefault(job.spec.name, [])
                try:
                    entry = ray.get(ref)
                    # Submit to result, seen by the driver: the worker's wall_s plus Ray's cost per input.
                    entry.setdefault("timings", {})["round_trip_s"] = _since(submitted)
                    idle.append(actor)
                except ray.exceptions.RayError as exc:  # the worker process died (killed, out of memory)
                    died.append(_first_line(exc))
                    ray.kill(actor, no_restart=True)
                    idle.append(new_actor())
                    if len(died) < MAX_ATTEMPTS:  # again, first in line, on a new worker
                        pending.appendleft(job)
                        continue
                    entry = {
                        "input": str(job.spec.path),
                        "kind": job.spec.kind,
                        "output": job.spec.name,
                        "fingerprint": job.fingerprint,
                        "options_key": job.options_key,
                        "status": FAILED,
                        "error": f"its worker died {len(died)} times: {died[-1]}",
                        "finished": now(),
                    }
                entry["attempts"] = len(died) + (entry.get("status") != FAILED)
                entry["worker_deaths"] = len(died)
                _record(manifest, run, job, entry)
                entries.append(entry)
                bar.finished(entry)
            bar.update(*ray.get(counter.get.remote()))
        timings["annotate_s"] = _since(t2)
        remove_partials(settings.out)  # what dead workers left; every live one has finished
        return entries
    except KeyboardInterrupt:
        for actor in actors:  # stop writing before the unfinished folders go
            ray.kill(actor, no_restart=True)
        if running:  # their tasks fail once the actors are gone; then nothing writes any more
            ray.wait(list(running), num_returns=len(running), timeout=10)
        raise
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
        else:  # a cluster that outlives the run gets its CPUs/GPUs back now
            for actor in actors:
                ray.kill(actor, no_restart=True)


def run_local(
    settings: AnnotateSettings,
    jobs: list[InputJob],
    manifest: DatasetManifest,
    run: dict[str, Any],
    progress: bool = True,
) -> list[dict[str, Any]]:
    """The same work in this process, without Ray (the benchmark's baseline for Ray's overhead)."""
    bar = _Bar(len(jobs), progress)
    state = [0, 0]

    def report(frames: int, total: int) -> None:
        state[0] += frames
        state[1] += total
        bar.update(*state)

    run["last_run"].update(engine="in-process")
    timings = run["last_run"].setdefault("timings", {})
    t0 = time.perf_counter()
    annotator = Annotator(settings, report)
    timings["workers_ready_s"], t1 = _since(t0), time.perf_counter()
    entries = []
    try:
        for job in jobs:
            entry = annotator.annotate(job)
            _record(manifest, run, job, entry)
            entries.append(entry)
            bar.finished(entry)
    finally:
        bar.close()
    timings["annotate_s"] = _since(t1)
    return entries


def _record(manifest: DatasetManifest, run: dict[str, Any], job: InputJob, entry: dict[str, Any]) -> None:
    if entry.get("skipped") and job.spec.name in manifest.inputs:  # unchanged content: keep its record, new stat
        entry = {**manifest.inputs[job.spec.name], "fingerprint": job.fingerprint}
    manifest.record(job.spec.name, entry)
    manifest.save(run)


def _gpus(ray: Any, requested: float | None) -> float:
    """``--gpus-per-worker``, by default one GPU each when the cluster has GPUs, none otherwise."""
    if requested is not None:
        return requested
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _check_resources(ray: Any, workers: int, cpus: float, gpus: float) -> None:
    """Refuse a request the cluster can never satisfy (Ray would wait for it forever)."""
    have = ray.cluster_resources()
    for name, each in (("CPU", cpus), ("GPU", gpus)):
        need = workers * each
        if need > have.get(name, 0) + 1e-9:
            raise UsageError(
                f"{workers} workers x {each:g} {name} need {need:g} {name}s but the Ray cluster has "
                f"{have.get(name, 0):g}; lower --num-workers or --{name.lower()}s-per-worker"
            )


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of Ray's (often 700-character) message, or of the exception it wraps, shortened."""
    cause = getattr(exc, "cause", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    line = lines[0] if lines else type(cause).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
