"""Command-line prompts: ``--point OBJ:X,Y[:LABEL][@FRAME]`` and ``--box OBJ:X1,Y1,X2,Y2[@FRAME]``.

The parsers are argparse ``type=`` functions, so a malformed value is reported by argparse
itself (``argument --point: ...``, exit code 2) before any model is built. Prompts are then
grouped per frame and object, and each group goes to the tracker in one call: the decoder
then sees all clicks of an object at once (click by click, each output would be fed back
as a mask prompt and change the result), and ``add_box`` replaces earlier prompts of that
frame, so a box and its clicks have to travel together.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sam2_ros.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from sam2_ros.tracking import Sam2Tracker, TrackResult

POINT_FORMAT = "OBJ:X,Y[:LABEL][@FRAME]"
BOX_FORMAT = "OBJ:X1,Y1,X2,Y2[@FRAME]"
MAX_OBJECT_ID = 255  # label images are 8-bit: pixel value = object id, 0 = background


@dataclass(frozen=True)
class PointPrompt:
    """One click: ``label`` 1 marks the object, 0 marks background."""

    obj_id: int
    x: float
    y: float
    label: int
    frame: int
    text: str


@dataclass(frozen=True)
class BoxPrompt:
    obj_id: int
    box: tuple[float, float, float, float]
    frame: int
    text: str


class FramePrompt(Protocol):
    """A prompt for the tracker's current frame: command-line clicks/boxes, or annotate's masks and detections."""

    def apply(self, tracker: Sam2Tracker) -> TrackResult: ...


@dataclass
class ObjectPrompt:
    """Everything given for one object on one frame: sent to the tracker in one call."""

    obj_id: int
    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the command-line values, for error messages

    def apply(self, tracker: Sam2Tracker) -> TrackResult:
        """Prompt the tracker's current frame; a refused prompt names the offending values."""
        from sam2_ros.tracking import PromptError  # noqa: PLC0415 - torch-free module: the model code loads only when a prompt needs it (and no import cycle)

        try:
            if self.box is not None:
                return tracker.add_box(self.obj_id, self.box, self.points or None, self.labels or None)
            return tracker.add_points(self.obj_id, self.points, self.labels)
        except PromptError as exc:
            raise PromptError(f"{', '.join(self.texts)}: {exc}") from exc


def _split_frame(text: str, what: str, fmt: str) -> tuple[str, int]:
    body, at, frame = text.partition("@")
    if not at:
        return body, 0
    try:
        index = int(frame)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid {what} {text!r}: FRAME {frame!r} is not an integer (format {fmt})"
        ) from None
    if index < 0:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: FRAME must be >= 0, got {index}")
    return body, index


def _object_id(value: str, text: str, what: str, fmt: str) -> int:
    try:
        obj_id = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid {what} {text!r}: OBJ {value!r} is not an integer (format {fmt})"
        ) from None
    if not 1 <= obj_id <= MAX_OBJECT_ID:
        raise argparse.ArgumentTypeError(
            f"invalid {what} {text!r}: OBJ must be in 1..{MAX_OBJECT_ID} "
            f"(label images are 8-bit, 0 is background), got {obj_id}"
        )
    return obj_id


def _numbers(value: str, count: int, names: str, text: str, what: str, fmt: str) -> list[float]:
    parts = value.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(parts) != count or len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise argparse.ArgumentTypeError(
            f"invalid {what} {text!r}: {names} must be {count} finite numbers "
            f"separated by commas, got {value!r} (format {fmt})"
        )
    return numbers


def parse_point(text: str) -> PointPrompt:
    """``OBJ:X,Y[:LABEL][@FRAME]`` in frame pixels; LABEL defaults to 1, FRAME to 0."""
    body, frame = _split_frame(text, "point", POINT_FORMAT)
    fields = body.split(":")
    if len(fields) not in (2, 3):
        raise argparse.ArgumentTypeError(f"invalid point {text!r}: expected {POINT_FORMAT}")
    obj_id = _object_id(fields[0], text, "point", POINT_FORMAT)
    x, y = _numbers(fields[1], 2, "X,Y", text, "point", POINT_FORMAT)
    label = 1
    if len(fields) == 3:
        if fields[2] not in ("0", "1"):
            raise argparse.ArgumentTypeError(
                f"invalid point {text!r}: LABEL must be 1 (object) or 0 (background), got {fields[2]!r}"
            )
        label = int(fields[2])
    return PointPrompt(obj_id, x, y, label, frame, text)


def parse_box(text: str) -> BoxPrompt:
    """``OBJ:X1,Y1,X2,Y2[@FRAME]`` in frame pixels (top-left, bottom-right); FRAME defaults to 0."""
    body, frame = _split_frame(text, "box", BOX_FORMAT)
    fields = body.split(":")
    if len(fields) != 2:
        raise argparse.ArgumentTypeError(f"invalid box {text!r}: expected {BOX_FORMAT}")
    obj_id = _object_id(fields[0], text, "box", BOX_FORMAT)
    x1, y1, x2, y2 = _numbers(fields[1], 4, "X1,Y1,X2,Y2", text, "box", BOX_FORMAT)
    if not (x1 < x2 and y1 < y2):
        raise argparse.ArgumentTypeError(f"invalid box {text!r}: need X1 < X2 and Y1 < Y2 (top-left corner first)")
    return BoxPrompt(obj_id, (x1, y1, x2, y2), frame, text)


def build_schedule(points: list[PointPrompt], boxes: list[BoxPrompt]) -> dict[int, list[ObjectPrompt]]:
    """Group prompts into ``{frame: [one ObjectPrompt per object, by id]}``.

    Two boxes for one object on one frame are refused: the tracker keeps only the last,
    so the first would be dropped without a word.
    """
    grouped: dict[tuple[int, int], ObjectPrompt] = {}
    for b in boxes:
        prompt = grouped.setdefault((b.frame, b.obj_id), ObjectPrompt(b.obj_id))
        if prompt.box is not None:
            raise UsageError(
                f"two boxes for object {b.obj_id} on frame {b.frame}: {prompt.texts[0]} and --box {b.text}"
            )
        prompt.box = b.box
        prompt.texts.append(f"--box {b.text}")
    for p in points:
        prompt = grouped.setdefault((p.frame, p.obj_id), ObjectPrompt(p.obj_id))
        prompt.points.append((p.x, p.y))
        prompt.labels.append(p.label)
        prompt.texts.append(f"--point {p.text}")
    schedule: dict[int, list[ObjectPrompt]] = {}
    for frame, obj_id in sorted(grouped):
        schedule.setdefault(frame, []).append(grouped[(frame, obj_id)])
    return schedule


def track_frame(
    tracker: Sam2Tracker, frame: np.ndarray, prompts: Sequence[FramePrompt], auto_objects: int = 0
) -> tuple[TrackResult, dict[str, float]]:
    """One frame as on a robot: ``track(frame)``, then that frame's prompts as taps on it.

    Returns the frame's final result and the tracking step's timing breakdown. ``sam2-ros
    annotate`` calls this too, so its label images equal ``track``'s by construction.
    ``auto_objects`` > 0 (``track --auto`` on the first frame): the best automatic masks of the
    frame become objects before the prompts.
    """
    result = tracker.track(frame)
    tracker_ms = result.timings_ms
    if auto_objects:
        from sam2_ros.image import prompt_everything  # noqa: PLC0415 - torch-free module: the model code loads only when a prompt needs it (and no import cycle)

        result = prompt_everything(tracker, frame, auto_objects) or result
    for prompt in prompts:
        result = prompt.apply(tracker)
    return result, tracker_ms
