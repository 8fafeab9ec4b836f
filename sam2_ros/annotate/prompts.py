"""Where each input's prompts come from: a prompt file, the bag's detections, or automatic masks.

Prompt file (YAML or JSON; JSON is YAML): input -> frame -> object -> points/labels/box::

    videos/arm.mp4:              # the input as given, its path, or its file/folder name
      0:                         # frame index (for a bag: the N-th image on the image topic)
        1: {box: [500, 200, 800, 500]}                       # object id 1..255: box x1,y1,x2,y2
        2: {points: [[100, 100], [140, 90]], labels: [1, 0]}  # clicks; labels 1 object, 0 background
      30:
        3: {points: [[640, 360]]}                           # labels default to all 1
    bags/run_0042:
      0:
        1: {box: [10, 10, 90, 80], points: [[50, 40]]}      # a box with a click, like --box + --point

Coordinates are frame pixels. A prompt on frame N is applied to frame N as a tap, exactly as
``sam2-ros track --point/--box ...@N``: the same input and prompts give the same label images.

Precedence per input: its prompt-file entry, else the detections of ``--detections-topic`` (bags),
else ``--auto`` (automatic masks on the first frame), else the input fails with "no prompts".
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2_ros.errors import InputError
from sam2_ros.io.prompts import MAX_OBJECT_ID, ObjectPrompt

if TYPE_CHECKING:
    import numpy as np

    from sam2_ros.annotate.inputs import InputSpec
    from sam2_ros.io.prompts import FramePrompt
    from sam2_ros.tracking import Sam2Tracker, TrackResult

FILE, DETECTIONS, AUTO = "file", "detections", "auto"
#: Records of the automatic mask generator kept in the manifest (the mask itself is in the outputs).
AUTO_RECORD_KEYS = ("area", "bbox", "predicted_iou", "stability_score")
#: Problems kept per input in the manifest.
MAX_WARNINGS = 20


# --- prompt file ---------------------------------------------------------------------------------


def load_prompt_file(path: Path) -> dict[str, dict[int, dict[int, dict[str, Any]]]]:
    """Read and check a prompt file; returns ``{input key: {frame: {object: {points, labels, box}}}}``.

    Every problem is reported with its place in the file, before any model is loaded.
    """
    import yaml  # noqa: PLC0415 - PyYAML loads only when a prompt file is read

    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"prompt file {path} is not valid YAML/JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or not doc:
        raise InputError(f"prompt file {path}: expected a mapping input -> frame -> object -> prompt")
    out: dict[str, dict[int, dict[int, dict[str, Any]]]] = {}
    for key, frames in doc.items():
        where = f"prompt file {path}: {key}"
        if not isinstance(frames, dict) or not frames:
            raise InputError(f"{where}: expected a mapping frame -> object -> prompt")
        entry: dict[int, dict[int, dict[str, Any]]] = {}
        for frame, objects in frames.items():
            index = _int(frame, f"{where}: frame", 0)
            if not isinstance(objects, dict) or not objects:
                raise InputError(f"{where} frame {frame}: expected a mapping object id -> prompt")
            entry[index] = {
                _int(obj, f"{where} frame {frame}: object id", 1, MAX_OBJECT_ID): _object_prompt(
                    spec, f"{where} frame {frame} object {obj}"
                )
                for obj, spec in objects.items()
            }
        out[str(key)] = entry
    return out


def _int(value: Any, what: str, low: int, high: int | None = None) -> int:
    """A YAML int or a JSON key holding one (JSON keys are strings), within ``low..high``."""
    try:
        number = int(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int):
        raise InputError(f"{what} {value!r} is not an integer")
    if number < low or (high is not None and number > high):
        raise InputError(
            f"{what} {number} is outside {low}..{high}" if high is not None else f"{what} {number} must be >= {low}"
        )
    return number


def _numbers(value: Any, count: int, what: str) -> list[float]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == count
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )
    if not ok:
        raise InputError(f"{what}: expected {count} finite numbers, got {value!r}")
    return [float(v) for v in value]


def _object_prompt(spec: Any, where: str) -> dict[str, Any]:
    if (
        not isinstance(spec, dict)
        or not spec.keys() <= {"points", "labels", "box"}
        or not ("points" in spec or "box" in spec)
    ):
        raise InputError(
            f"{where}: expected {{points: [[x, y], ...], labels: [1, 0, ...], box: [x1, y1, x2, y2]}} "
            f"with points and/or box, got {spec!r}"
        )
    prompt: dict[str, Any] = {}
    if "box" in spec:
        x1, y1, x2, y2 = _numbers(spec["box"], 4, f"{where} box")
        if not (x1 < x2 and y1 < y2):
            raise InputError(f"{where} box {spec['box']}: need x1 < x2 and y1 < y2 (top-left corner first)")
        prompt["box"] = [x1, y1, x2, y2]
    points = spec.get("points", [])
    if not isinstance(points, list) or ("points" in spec and not points):
        raise InputError(f"{where} points: expected a non-empty list of [x, y], got {points!r}")
    prompt["points"] = [_numbers(p, 2, f"{where} point {i}") for i, p in enumerate(points)]
    labels = spec.get("labels", [1] * len(points))
    if (
        not isinstance(labels, list)
        or len(labels) != len(points)
        or any(v not in (0, 1) or isinstance(v, bool) for v in labels)
    ):
        raise InputError(f"{where} labels: expected one 1 (object) or 0 (background) per point, got {labels!r}")
    prompt["labels"] = [int(v) for v in labels]
    return prompt


def match_prompt_file(entries: dict[str, Any], inputs: list[InputSpec], prompt_file: Path) -> dict[str, dict]:
    """``{input name: entry}``: a key names an input by its text, its path (relative to the working
    folder or to the prompt file) or its file/folder name. Ambiguous or unused keys are errors."""
    matched: dict[str, dict] = {}
    for key, entry in entries.items():
        candidates = {(Path(key)).resolve(), (prompt_file.parent / key).resolve()}
        hits = [s for s in inputs if s.spec == key or s.path in candidates]
        hits = hits or [s for s in inputs if s.path.name == key]
        if not hits:
            raise InputError(f"prompt file {prompt_file}: {key!r} names none of the inputs")
        if len(hits) > 1:
            raise InputError(
                f"prompt file {prompt_file}: {key!r} names {len(hits)} inputs "
                f"({', '.join(s.spec for s in hits)}); use their paths"
            )
        name = hits[0].name
        if name in matched:
            raise InputError(f"prompt file {prompt_file}: {hits[0].spec} has two entries")
        matched[name] = entry
    return matched


def file_schedule(entry: dict[int, dict[int, dict[str, Any]]], where: str) -> dict[int, list[ObjectPrompt]]:
    """``{frame: [ObjectPrompt per object, by id]}``: one tracker call per object and frame, as ``track``."""
    schedule: dict[int, list[ObjectPrompt]] = {}
    for frame in sorted(entry):
        for obj_id in sorted(entry[frame]):
            spec = entry[frame][obj_id]
            schedule.setdefault(frame, []).append(
                ObjectPrompt(
                    obj_id,
                    box=tuple(spec["box"]) if "box" in spec else None,
                    points=[tuple(p) for p in spec["points"]],
                    labels=list(spec["labels"]),
                    texts=[f"{where} frame {frame} object {obj_id}"],
                )
            )
    return schedule


# --- prompts in the worker -----------------------------------------------------------------------


@dataclass
class MaskPrompt:
    """A mask for one object on the current frame (from the automatic mask generator)."""

    obj_id: int
    mask: np.ndarray
    texts: list[str] = field(default_factory=list)

    def apply(self, tracker: Sam2Tracker) -> TrackResult:
        from sam2_ros.tracking import PromptError  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code

        try:
            return tracker.add_mask(self.obj_id, self.mask)
        except PromptError as exc:
            raise PromptError(f"{', '.join(self.texts)}: {exc}") from exc


class PromptPlan(ABC):
    """An input's prompts, handed out frame by frame; ``record`` is what the manifest keeps."""

    source: str

    @abstractmethod
    def for_frame(self, index: int, frame: np.ndarray, stamp_ns: int | None) -> list[FramePrompt]:
        """The prompts to apply to frame ``index`` right after it is tracked."""

    @abstractmethod
    def record(self) -> dict[str, Any]:
        """The prompts as the manifest records them."""

    def warnings(self, frames_done: int) -> list[str]:
        return []


class FilePlan(PromptPlan):
    source = FILE

    def __init__(self, entry: dict[int, dict[int, dict[str, Any]]], where: str) -> None:
        self.entry = entry
        self.schedule = file_schedule(entry, where)

    def for_frame(self, index: int, frame: np.ndarray, stamp_ns: int | None) -> list[FramePrompt]:
        return list(self.schedule.get(index, []))

    def record(self) -> dict[str, Any]:
        return {
            "source": FILE,
            "frames": {str(f): {str(o): p for o, p in objs.items()} for f, objs in sorted(self.entry.items())},
        }

    def warnings(self, frames_done: int) -> list[str]:
        late = sorted(f for f in self.schedule if f >= frames_done)
        return (
            [f"prompts for frames {late} were never applied: the input ended after {frames_done} frames"]
            if late
            else []
        )


class AutoPlan(PromptPlan):
    """Automatic masks on the first frame, each a new object (ids 1, 2, ...; the ``max_objects`` best rated)."""

    source = AUTO

    def __init__(self, generate: Callable[[np.ndarray], list[dict[str, Any]]], max_objects: int) -> None:
        self.generate = generate
        self.max_objects = max_objects
        self.found = 0
        self.kept: list[dict[str, Any]] = []

    def for_frame(self, index: int, frame: np.ndarray, stamp_ns: int | None) -> list[FramePrompt]:
        from sam2_ros.image import record_mask, select_records  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code

        if index:
            return []
        records = self.generate(frame)
        self.found = len(records)
        prompts: list[FramePrompt] = []
        for obj_id, rec in enumerate(select_records(records, self.max_objects), start=1):
            self.kept.append({"object_id": obj_id, **{k: _plain(rec[k]) for k in AUTO_RECORD_KEYS if k in rec}})
            prompts.append(MaskPrompt(obj_id, record_mask(rec), [f"automatic mask {obj_id}"]))
        return prompts

    def record(self) -> dict[str, Any]:
        return {"source": AUTO, "found": self.found, "objects": self.kept}

    def warnings(self, frames_done: int) -> list[str]:
        if self.found > len(self.kept):
            return [
                f"{self.found} automatic masks on the first frame; kept the {len(self.kept)} rated best (--max-objects)"
            ]
        return [] if self.kept or not frames_done else ["no automatic masks on the first frame: nothing tracked"]


class DetectionPlan(PromptPlan):
    """Boxes of a vision_msgs/Detection2DArray topic, each applied to the image with the same header stamp.

    As in the node: a decimal detection id names the object, any other id starts a new object;
    boxes are clipped to the image, and a detection that cannot be used is skipped with a warning.
    """

    source = DETECTIONS

    def __init__(self, by_stamp: dict[int, list[Any]], topic: str, problems: list[str]) -> None:
        self.by_stamp = by_stamp
        self.topic = topic
        self.problems = problems
        self.total = sum(len(v) for v in by_stamp.values())
        self.used = 0
        self._next_id = 1
        self._ids: set[int] = set()

    def for_frame(self, index: int, frame: np.ndarray, stamp_ns: int | None) -> list[FramePrompt]:
        h, w = frame.shape[:2]
        prompts: list[FramePrompt] = []
        for det in self.by_stamp.pop(stamp_ns, []) if stamp_ns is not None else []:
            x1, y1, x2, y2 = det.box
            box = (max(0.0, min(x1, w)), max(0.0, min(y1, h)), max(0.0, min(x2, w)), max(0.0, min(y2, h)))
            if not (box[0] < box[2] and box[1] < box[3]):
                self._problem(f"detection on image {index} ({det.box}) lies outside the {w}x{h} image")
                continue
            obj_id = det.obj_id if det.obj_id is not None else self._new_id()
            if not 1 <= obj_id <= MAX_OBJECT_ID:
                self._problem(f"detection id {obj_id} on image {index} is outside 1..{MAX_OBJECT_ID}")
                continue
            self._ids.add(obj_id)
            self.used += 1
            prompts.append(ObjectPrompt(obj_id, box=box, texts=[f"{self.topic} detection on image {index}"]))
        return prompts

    def _problem(self, text: str) -> None:
        if len(self.problems) < MAX_WARNINGS:  # the manifest keeps the first few; a broken detector sends thousands
            self.problems.append(text)

    def _new_id(self) -> int:
        while self._next_id in self._ids:
            self._next_id += 1
        return self._next_id

    def record(self) -> dict[str, Any]:
        return {
            "source": DETECTIONS,
            "topic": self.topic,
            "detections": self.total,
            "used": self.used,
            "objects": sorted(self._ids),
        }

    def warnings(self, frames_done: int) -> list[str]:
        unmatched = sum(len(v) for v in self.by_stamp.values())
        extra = (
            [f"{unmatched} detections matched no image stamp among the {frames_done} images read"] if unmatched else []
        )
        return self.problems + extra


def read_detections(bag: Path, topic: str) -> DetectionPlan:
    """All detections of ``topic``, by header stamp (a pre-pass: they may be recorded after their image)."""
    from sam2_ros.ros.bags.bag_io import open_bag, read_messages  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code
    from sam2_ros.ros.interfaces.messages import PromptError, prompts_from_detections  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code
    from sam2_ros.ros.interfaces.typesys import typestore  # noqa: PLC0415 - bag inputs only: non-bag runs never load the ROS message code

    by_stamp: dict[int, list[Any]] = {}
    problems: list[str] = []
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise InputError(f"{bag}: no topic {topic!r}")
        if connections[0].msgtype != "vision_msgs/msg/Detection2DArray":
            raise InputError(f"{bag}: {topic} is {connections[0].msgtype}, not vision_msgs/msg/Detection2DArray")
        for _, msg in read_messages(reader, connections, typestore()):
            try:
                prompts = prompts_from_detections(msg)
            except PromptError as exc:
                if len(problems) < MAX_WARNINGS:
                    problems.append(f"detections ignored: {exc}")
                continue
            for prompt in prompts:
                if prompt.stamp_ns is None:
                    if len(problems) < MAX_WARNINGS:
                        problems.append("detections without a header stamp ignored (they name no image)")
                    break
                by_stamp.setdefault(prompt.stamp_ns, []).append(prompt)
    return DetectionPlan(by_stamp, topic, problems)


def _plain(value: Any) -> Any:
    """numpy scalars/arrays -> JSON-able Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Iterable) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value
