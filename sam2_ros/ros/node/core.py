"""The tracker node without ROS: inputs and service calls in, ready-to-publish messages out.

Why: rclpy cannot run in CI, so everything the node decides lives here and is tested on rosbags
messages, which serialize to the same CDR bytes as rclpy's. The rclpy node (``node.py``) and
the offline bag replay (``replay.py``) are thin shells around one ``TrackerCore``.

Threading, as in the node: callbacks (``on_*``, the service handlers) run on executor threads and
never wait for the model; they validate, update the object registry and queue a command. One
inference thread calls ``step()``, which applies the queued commands and tracks the newest frame.
Frames pass through a size-1 ``LatestFrameSlot``: when the model is slower than the camera, the
frames it could not get to are dropped (and counted), never queued.

Which frame a prompt lands on: a prompt stamped with the frame the user saw (or unstamped, meaning
"what is on screen now") is applied to the most recently tracked frame before the next one is
tracked, exactly as the tracker applies prompts to its current frame; its effect shows from the
next published frame on and shapes the memory. A prompt naming an older frame goes to the current
frame, with a log line. A prompt naming a frame not tracked yet (or arriving before any frame)
waits and is applied right after the next frame is tracked, so that frame's outputs include it.
Commands keep their order: one that has to wait holds back those queued after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
import torch

from sam2_ros.ros.interfaces.image_codec import ImageDecodeError, image_to_rgb, label_image_msg, rgb_to_image_msg
from sam2_ros.ros.interfaces.messages import (
    Box,
    Prompt,
    PromptError,
    PublishedObject,
    detection_array_msg,
    label_info_msg,
    parse_caller_id,
    prompt_from_msg,
    prompt_from_point,
    prompt_from_point_stamped,
    prompts_from_add_objects,
    prompts_from_detections,
    stamp_ns,
    tracked_object_array_msg,
)
from sam2_ros.ros.interfaces.typesys import (
    ADD_OBJECTS_RESPONSE,
    REMOVE_OBJECT_RESPONSE,
    TRACKED_OBJECT_ARRAY,
    typestore,
)
from sam2_ros.ros.node.log_limits import KindRateLimiter, one_line
from sam2_ros.ros.node.object_ids import ObjectRegistry
from sam2_ros.ros.node.params import TrackerParams, spec
from sam2_ros.ros.node.track_outputs import LastSeen, draw_track_states, track_fields
from sam2_ros.settings import MAX_LABELS
from sam2_ros.tracking.errors import TrackerError
from sam2_ros.tracking.results import TrackResult
from sam2_ros.tracking.track_state import TrackStates
from sam2_ros.utils.draw import OVERLAY_ALPHA, object_color
from sam2_ros.utils.latest import LatestFrameSlot

if TYPE_CHECKING:
    from sam2_ros.tracking import Sam2Tracker

#: Queued prompts and service calls; more are refused with a logged error (reset always fits:
#: it replaces everything queued).
COMMAND_QUEUE_LIMIT = 64
#: Presence probability above which an object counts as visible (the tracker's logit > 0).
PRESENCE_THRESHOLD = 0.5

#: Output topics, relative to the node (``~/label_image``, ...), with their message types.
LABEL_INFO, LABEL_IMAGE, DETECTIONS, TRACKED_OBJECTS, OVERLAY = (
    "label_info",
    "label_image",
    "detections",
    "tracked_objects",
    "overlay",
)
OUTPUT_TYPES = {
    LABEL_INFO: "vision_msgs/msg/LabelInfo",
    LABEL_IMAGE: "sensor_msgs/msg/Image",
    DETECTIONS: "vision_msgs/msg/Detection2DArray",
    TRACKED_OBJECTS: TRACKED_OBJECT_ARRAY,
    OVERLAY: "sensor_msgs/msg/Image",
}
IMAGE_TYPES = {"raw": "sensor_msgs/msg/Image", "compressed": "sensor_msgs/msg/CompressedImage"}


class Logger(Protocol):
    """What the core logs through: Python's ``logging.Logger`` and rclpy's node logger both fit."""

    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...


@dataclass
class ServiceResult:
    """What std_srvs Trigger and SetBool answer (those types are not in the rosbags store)."""

    success: bool
    message: str


@dataclass
class Outputs:
    """Everything published for one tracked frame, as rosbags messages; all carry the input header.

    ``label_info`` is set only when the label-to-id map changed; ``overlay`` only when asked for.
    ``objects`` are the published objects. ``latency_ms``: from the frame's arrival to these
    outputs; ``inference_ms``: tracking and prompts; ``fps``: from the previous outputs' time
    (0 for the first); ``dropped_frames``: frames overwritten before the model saw them, in total.
    """

    header: Any
    label_image: Any
    detections: Any
    tracked_objects: Any
    objects: list[PublishedObject]
    latency_ms: float = 0.0
    inference_ms: float = 0.0
    fps: float = 0.0
    dropped_frames: int = 0
    label_info: Any | None = None
    overlay: Any | None = None
    #: With ``use_depth`` (sam2_ros.ros.interfaces.messages3d topics): present when the frame had usable depth.
    depth: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> list[tuple[str, Any]]:
        """``(output topic, message)`` pairs to publish, in order (label info before the images it explains)."""
        pairs = [
            (LABEL_INFO, self.label_info),
            (LABEL_IMAGE, self.label_image),
            (DETECTIONS, self.detections),
            (TRACKED_OBJECTS, self.tracked_objects),
            (OVERLAY, self.overlay),
            *self.depth.items(),
        ]
        return [(topic, msg) for topic, msg in pairs if msg is not None]


@dataclass
class _Frame:
    msg: Any  # a rosbags Image / CompressedImage, or its CDR bytes
    received: float  # clock() when it arrived


@dataclass
class _PromptCommand:
    prompt: Prompt  # obj_id resolved
    source: str  # for log lines: "tap", "detection", "prompt", "add_objects"
    replace: bool = False  # a tap in replace mode: the other objects go first
    clip_box: bool = False  # detector boxes may overhang the image; clip instead of refusing


@dataclass
class _RemoveCommand:
    obj_id: int


@dataclass
class _ResetCommand:
    pass


_Command = _PromptCommand | _RemoveCommand | _ResetCommand


class _Stats:
    """Counters for diagnostics: totals, plus a window that ``take_window`` reads and restarts."""

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self.rejected_frames = 0
        self.refused_prompts = 0
        self.bad_messages = 0  # messages other than images that could not be deserialized
        self._window_start = now
        self._latency: list[float] = []
        self._inference: list[float] = []
        self._rejected_in_window = 0

    def frame(self, latency_ms: float, inference_ms: float) -> None:
        with self._lock:
            self._latency.append(latency_ms)
            self._inference.append(inference_ms)

    def rejected(self) -> None:
        with self._lock:
            self.rejected_frames += 1
            self._rejected_in_window += 1

    def bad_message(self) -> None:
        with self._lock:
            self.bad_messages += 1

    def refused(self) -> None:
        with self._lock:
            self.refused_prompts += 1

    def take_window(self, now: float) -> tuple[float, list[float], list[float], int]:
        """(seconds, latencies, inference times, rejected frames) since the last call."""
        with self._lock:
            window = (max(now - self._window_start, 1e-9), self._latency, self._inference, self._rejected_in_window)
            self._window_start, self._latency, self._inference, self._rejected_in_window = now, [], [], 0
            return window


class TrackerCore:
    """One tracker behind ROS-shaped inputs and outputs (see the module docstring for the threading).

    ``tracker``: a ready ``Sam2Tracker``; ``params``: the node's settings (``tap_mode`` and
    ``publish_masks`` may change at runtime through ``set_param``); ``logger``: where refused
    input is reported; ``clock``: seconds, for latencies and the diagnostics window.
    """

    def __init__(
        self,
        tracker: Sam2Tracker,
        params: TrackerParams,
        logger: Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = tracker
        self.params = params
        self.log: Logger = logger or logging.getLogger(__name__)
        self.clock = clock
        self.slot: LatestFrameSlot[_Frame] = LatestFrameSlot()
        self.stats = _Stats(clock())
        self._image_type = IMAGE_TYPES[params.image_transport]
        self._lock = threading.Lock()  # registry, queue and the current frame's stamp and size
        self._commands: deque[_Command] = deque()
        self._objects = ObjectRegistry(min(params.max_objects, tracker.bank.max_objects, MAX_LABELS))
        self._enabled = True
        self._has_frame = False  # the tracker holds a frame that prompts can go to
        self._stamp: int | None = None  # that frame's stamp (None: unstamped)
        self._frame_hw: tuple[int, int] | None = None  # size of the latest decoded frame, to check prompts
        self._limiter = KindRateLimiter(self.log, clock=clock)  # decode errors: per encoding / message type
        self._published_labels: dict[int, str] = {}  # label -> caller id, as last sent in LabelInfo
        self._label_info_sent = False
        self._last_output: float | None = None  # clock() when the previous outputs were ready
        tracker.states = TrackStates(
            params.lost_after_frames, params.lost_after_seconds or None, params.remove_lost_after or None
        )
        self._last_seen = LastSeen()  # stamps of each object's last sighting
        self.depth = None
        if params.use_depth:
            from sam2_ros.ros.node.depth3d import DepthPipeline  # noqa: PLC0415 - the 3-D pipeline loads only when depth is enabled

            self.depth = DepthPipeline(params, self.log)

    # ----------------------------------------------------------------- settings
    def set_param(self, name: str, value: Any) -> None:
        """Change a runtime parameter (``tap_mode``, ``publish_masks``); ValueError if read-only or invalid."""
        param = spec(name)
        if not param.dynamic:
            raise ValueError(f"parameter {name!r} is read-only; set it at startup")
        setattr(self.params, name, param.check(value))

    # ------------------------------------------------------------------ inputs
    def on_image(self, msg: Any) -> None:
        """Offer a frame: a rosbags Image / CompressedImage or its CDR bytes (decoded only if tracked).

        Never raises and never blocks on the model: it only replaces the waiting frame.
        """
        if self._enabled:
            self.slot.put(_Frame(msg, self.clock()))

    def on_depth(self, msg: Any) -> None:
        """A depth image registered to the colour image (sensor_msgs/Image or CDR bytes); ignored without use_depth."""
        if self.depth is not None:
            self.depth.on_depth(msg)

    def on_camera_info(self, msg: Any) -> None:
        """The camera's sensor_msgs/CameraInfo (or CDR bytes); ignored without use_depth."""
        if self.depth is not None:
            self.depth.on_camera_info(msg)

    def on_point_stamped(self, msg: Any) -> None:
        """A tap (geometry_msgs/PointStamped, pixels; the stamp names the tapped frame)."""
        self._tap(lambda: prompt_from_point_stamped(msg))

    def on_point(self, msg: Any) -> None:
        """A tap without a stamp (geometry_msgs/Point, e.g. rqt_image_view's ``<image>_mouse_left``)."""
        self._tap(lambda: prompt_from_point(msg))

    def on_detections(self, msg: Any) -> None:
        """Box seeds from vision_msgs/Detection2DArray.

        A detection's id names its object (``object_ids``); "" is a new object.
        """
        try:
            prompts = prompts_from_detections(msg)
        except PromptError as exc:
            self.log.warning(f"detections ignored: {exc}")
            return
        for prompt in prompts:  # one bad detection does not cost the others
            try:
                with self._lock:
                    self._require_room(1)
                    if prompt.caller_id is None:
                        prompt.obj_id = self._objects.new_id()
                    else:
                        prompt.obj_id = self._objects.resolve([prompt.caller_id])[0]
                    self._objects.add(prompt.obj_id, prompt.caller_id)
                    self._commands.append(_PromptCommand(prompt, "detection", clip_box=True))
            except PromptError as exc:
                self.log.warning(f"detection ignored: {exc}")
        self.slot.wake()

    def on_prompt(self, msg: Any) -> None:
        """A sam2_ros_interfaces/ObjectPrompt (points with labels and/or a box for one object)."""
        try:
            prompt = prompt_from_msg(msg)
            with self._lock:
                self._check_inside(prompt)
                self._require_room(1)
                if prompt.obj_id is None:
                    prompt.obj_id = self._objects.new_id()
                self._objects.add(prompt.obj_id)
                self._commands.append(_PromptCommand(prompt, "prompt"))
        except PromptError as exc:
            self.log.warning(f"prompt ignored: {exc}")
            return
        self.slot.wake()

    # ---------------------------------------------------------------- services
    def add_objects(self, request: Any) -> Any:
        """AddObjects: queue every object's prompts, or none of them; answers at once with the ids and labels.

        Object ids are the caller's strings (names or decimal tracker ids, see ``object_ids``); an
        id already tracked refines that object.
        """

        def queue() -> str:
            prompts = prompts_from_add_objects(request)
            seen: dict[int, Prompt] = {}
            for prompt, obj_id in zip(prompts, self._objects.resolve([p.caller_id for p in prompts])):
                if obj_id in seen:
                    raise PromptError(
                        f"object ids '{seen[obj_id].caller_id}' and '{prompt.caller_id}' name the same "
                        f"object (tracker id {obj_id}); use one of them"
                    )
                seen[obj_id], prompt.obj_id = prompt, obj_id
            for prompt in prompts:
                self._check_inside(prompt)
            new = {p.obj_id for p in prompts} - set(self._objects.labels)
            free = self._objects.capacity - len(self._objects.labels)
            if len(new) > free:
                raise PromptError(
                    f"{len(new)} new objects but only {free} of max_objects={self._objects.capacity} are free"
                )
            self._require_room(len(prompts))
            for prompt in prompts:
                self._objects.add(prompt.obj_id, prompt.caller_id)
                self._commands.append(_PromptCommand(prompt, "add_objects"))
            return f"queued prompts for objects {', '.join(self._objects.name(p.obj_id) for p in prompts)}"

        return self._answer(ADD_OBJECTS_RESPONSE, queue)

    def remove_object(self, request: Any) -> Any:
        """RemoveObject: forget one object (known or queued), by name or decimal tracker id; unknown ids are refused."""

        def queue() -> str:
            caller_id = parse_caller_id(request.object_id)
            obj_id = self._objects.known(caller_id)
            if obj_id is None:
                raise PromptError(
                    f"unknown object id {caller_id!r}; tracked ids: "
                    f"{[name for name, _ in self._objects.named_snapshot()]}"
                )
            self._require_room(1)
            name = self._objects.name(obj_id)
            self._objects.remove(obj_id)
            self._commands.append(_RemoveCommand(obj_id))
            return f"removing object {name}"

        return self._answer(REMOVE_OBJECT_RESPONSE, queue)

    def _answer(self, response_type: str, queue: Callable[[], str]) -> Any:
        """Run ``queue`` under the lock and answer with the object list; a PromptError becomes the message.

        ``queue`` checks everything before it changes anything, so a refused request queues nothing.
        """
        with self._lock:
            try:
                success, message = True, queue()
            except PromptError as exc:
                success, message = False, str(exc)
            objects = self._objects.named_snapshot()
        self.slot.wake()
        return _object_list_response(typestore().types[response_type], objects, success, message)

    def reset(self) -> ServiceResult:
        """Forget every object and frame; replaces whatever was still queued (it would be undone anyway)."""
        with self._lock:
            forgotten = len(self._objects.labels)
            self._objects.clear()
            self._commands.clear()
            self._commands.append(_ResetCommand())
        self.slot.wake()
        return ServiceResult(True, f"reset: {forgotten} objects forgotten")

    def enable(self, enabled: bool) -> ServiceResult:
        """Start or pause tracking. Paused, frames are ignored and nothing is published; objects are kept."""
        self._enabled = bool(enabled)
        if not self._enabled:
            self.slot.take()
        return ServiceResult(True, "tracking enabled" if self._enabled else "tracking paused")

    def report_bad_message(self, typename: str, error: Exception) -> None:
        """A message the node could not deserialize (``typename``, e.g. "geometry_msgs/msg/Point").

        Counted for diagnostics and logged, rate-limited per (type, exception type): a second,
        different fault is reported even while the first one repeats.
        """
        self.stats.bad_message()
        self._limiter.log(
            "error",
            f"{typename}:{type(error).__name__}",
            f"dropping a {typename} message that cannot be read ({type(error).__name__}: {error})",
        )

    # --------------------------------------------------------------- inference
    def step(self, overlay: bool = False, timeout: float = 0.0, cloud: bool = False) -> Outputs | None:
        """Apply queued commands and track the newest frame (waiting up to ``timeout`` s for one).

        ``overlay``: also draw the overlay image (the node asks only while someone subscribes);
        ``cloud``: also build the object_points cloud (with depth; likewise only for subscribers).
        Returns the frame's outputs, or None when no frame was tracked (none came, tracking is
        paused, or the frame could not be decoded). Call from one thread only.
        """
        frame = self.slot.take(timeout)
        self._run_commands(new_frame=False)
        if frame is None or not self._enabled:
            return None
        decoded = self._decode(frame.msg)
        if decoded is None:
            return None
        rgb, header = decoded
        t0 = time.perf_counter()
        try:
            result = self.tracker.track(rgb)
        except TrackerError as exc:
            self.stats.rejected()
            self.log.error(f"frame dropped: {exc}")
            return None
        with self._lock:
            self._has_frame, self._stamp, self._frame_hw = True, stamp_ns(header), rgb.shape[:2]
        result = self._run_commands(new_frame=True) or result
        result = _rows(result, set(self.tracker.object_ids))
        if self.params.remove_lost_after:  # the tracker removed long-lost objects: free their labels
            for obj_id in set(self._objects.labels) - set(self.tracker.object_ids):
                self._forget_if_unused(obj_id)
        inference_ms = (time.perf_counter() - t0) * 1e3
        self._last_seen.update(result.states, header)
        outputs = self._outputs(rgb, header, result, overlay)
        if self.depth is not None:
            outputs.depth = self.depth.outputs(
                result,
                header,
                {o.obj_id: o.label for o in outputs.objects},
                {o.obj_id: o.score for o in outputs.objects},
                cloud,
            )
        now = self.clock()
        outputs.inference_ms, outputs.latency_ms = inference_ms, (now - frame.received) * 1e3
        if self._last_output is not None and now > self._last_output:
            outputs.fps = 1.0 / (now - self._last_output)
        outputs.dropped_frames, self._last_output = self.slot.dropped, now
        self.stats.frame(outputs.latency_ms, inference_ms)
        return outputs

    def label_info(self, header: Any) -> Any:
        """vision_msgs/LabelInfo of the labels last published (background only before the first frame).

        The node publishes it at startup, so latched subscribers always hold one.
        """
        self._label_info_sent = True
        return label_info_msg(header, self._published_labels, PRESENCE_THRESHOLD)

    def diagnostics(self, header: Any, name: str) -> Any:
        """A diagnostic_msgs/DiagnosticArray for the time since the previous call: fps, latency, dropped frames.

        WARN when tracking is on but no frame was tracked, or when frames could not be decoded.
        """
        types = typestore().types
        status_type = types["diagnostic_msgs/msg/DiagnosticStatus"]
        seconds, latency, inference, rejected = self.stats.take_window(self.clock())
        level, message = status_type.OK, f"tracking {len(self._published_labels)} objects"
        if not self._enabled:
            message = "paused (enable service)"
        elif not latency:
            level, message = status_type.WARN, f"no frame tracked in the last {seconds:.1f} s"
        elif rejected:
            level, message = status_type.WARN, f"{rejected} frames could not be decoded"
        values = {
            "fps": f"{len(latency) / seconds:.2f}",
            "latency_ms_mean": f"{np.mean(latency):.1f}" if latency else "",
            "latency_ms_max": f"{np.max(latency):.1f}" if latency else "",
            "inference_ms_mean": f"{np.mean(inference):.1f}" if inference else "",
            "frames_received": str(self.slot.received),
            "frames_dropped": str(self.slot.dropped),
            "frames_rejected": str(self.stats.rejected_frames),
            "prompts_refused": str(self.stats.refused_prompts),
            "messages_unreadable": str(self.stats.bad_messages),
            "objects": str(len(self._published_labels)),
            "enabled": str(self._enabled).lower(),
            **self._last_seen.diagnostics(self.tracker.states.states()),
            **(self.depth.diagnostics() if self.depth is not None else {}),
        }
        status = status_type(
            level=level,
            name=name,
            message=message,
            hardware_id="",
            values=[types["diagnostic_msgs/msg/KeyValue"](key=key, value=value) for key, value in values.items()],
        )
        return types["diagnostic_msgs/msg/DiagnosticArray"](header=header, status=[status])

    # --------------------------------------------------------------- internals
    def _tap(self, parse: Callable[[], Prompt]) -> None:
        try:
            prompt = parse()
            with self._lock:
                self._check_inside(prompt)
                self._require_room(1)
                replace = self.params.tap_mode == "replace"
                if replace:
                    self._objects.clear()
                prompt.obj_id = self._objects.new_id()
                self._objects.add(prompt.obj_id)
                self._commands.append(_PromptCommand(prompt, "tap", replace=replace))
                if self.depth is not None:
                    self.depth.tapped = prompt.obj_id
        except PromptError as exc:
            self.log.warning(f"tap ignored: {exc}")
            return
        self.slot.wake()

    def _require_room(self, count: int) -> None:
        if len(self._commands) + count > COMMAND_QUEUE_LIMIT:
            self.stats.refused()
            raise PromptError(f"command queue full ({COMMAND_QUEUE_LIMIT} waiting for the inference thread); try again")

    def _check_inside(self, prompt: Prompt) -> None:
        """Refuse prompts outside the latest frame at once (the tracker would refuse them later, silently)."""
        if self._frame_hw is None:
            return
        h, w = self._frame_hw
        outside = [(x, y) for x, y in prompt.points if not (0 <= x <= w and 0 <= y <= h)]
        if outside:
            raise PromptError(f"points {outside} lie outside the {w}x{h} image")
        if prompt.box is not None:
            x1, y1, x2, y2 = prompt.box
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise PromptError(f"box {list(prompt.box)} is not inside the {w}x{h} image")

    def _run_commands(self, new_frame: bool) -> TrackResult | None:
        """Apply queued commands in order; before a new frame, stop at the first that must wait for it.

        Returns the tracker's result after the last prompt applied, if any.
        """
        result = None
        while True:
            with self._lock:
                if not self._commands or not self._ready(self._commands[0], new_frame):
                    return result
                command = self._commands.popleft()
            result = self._apply(command) or result

    def _ready(self, command: _Command, new_frame: bool) -> bool:
        """Whether ``command`` may go to the tracker's current frame now (see the module docstring)."""
        if not isinstance(command, _PromptCommand):
            return True
        if not self._has_frame:  # no frame yet, or reset: prompts wait for the next one
            return False
        stamp = command.prompt.stamp_ns
        return new_frame or stamp is None or (self._stamp is not None and stamp <= self._stamp)

    def _apply(self, command: _Command) -> TrackResult | None:
        if isinstance(command, _ResetCommand):
            self.tracker.reset()
            with self._lock:
                self._has_frame, self._stamp = False, None
            return None
        if isinstance(command, _RemoveCommand):
            if command.obj_id in self.tracker.object_ids:  # absent when its prompt was refused
                self.tracker.remove_object(command.obj_id)
            return None
        prompt = command.prompt
        if prompt.stamp_ns is not None and prompt.stamp_ns != self._stamp:
            when = "was superseded" if self._stamp is not None and prompt.stamp_ns < self._stamp else "is not tracked"
            self.log.info(
                f"{command.source} for object {prompt.obj_id} names frame {_time(prompt.stamp_ns)}, which "
                f"{when}: re-targeted to the current frame {_time(self._stamp)}"
            )
        if command.replace:
            for obj_id in self.tracker.object_ids:
                self.tracker.remove_object(obj_id)
        box = _clip(prompt.box, self._frame_hw) if command.clip_box and prompt.box is not None else prompt.box
        try:
            if box is not None:
                return self.tracker.add_box(prompt.obj_id, box, prompt.points or None, prompt.labels or None)
            return self.tracker.add_points(prompt.obj_id, prompt.points, prompt.labels)
        except TrackerError as exc:
            self.stats.refused()
            self.log.error(f"{command.source} for object {prompt.obj_id} refused: {exc}")
            self._forget_if_unused(prompt.obj_id)
            return None

    def _forget_if_unused(self, obj_id: int) -> None:
        """Drop a refused new object's registry entry, unless the tracker has it or another prompt for it waits."""
        with self._lock:
            waiting = any(isinstance(c, _PromptCommand) and c.prompt.obj_id == obj_id for c in self._commands)
            if obj_id not in self.tracker.object_ids and not waiting:
                self._objects.remove(obj_id)

    def _decode(self, msg: Any) -> tuple[np.ndarray, Any] | None:
        """(RGB pixels, header), or None after counting the frame and logging why (rate-limited per kind).

        Kinds: (encoding or format, sort of decode error), and (image type, exception type) for
        malformed CDR, so that each distinct fault is reported.
        """
        try:
            if isinstance(msg, (bytes, bytearray, memoryview)):
                msg = typestore().deserialize_cdr(msg, self._image_type)
            return image_to_rgb(msg), msg.header
        except ImageDecodeError as exc:
            source = msg.encoding if hasattr(msg, "encoding") else f"format {msg.format!r}"
            kind, problem = f"image {source}: {exc.kind}", str(exc)
        except Exception as exc:  # noqa: BLE001 - any malformed CDR; rosbags raises several types
            kind = f"{self._image_type}:{type(exc).__name__}"
            problem = f"not a {self._image_type} message ({type(exc).__name__}: {one_line(str(exc))})"
        self.stats.rejected()
        self._limiter.log("error", kind, f"dropping images: {problem}")
        return None

    def _outputs(self, rgb: np.ndarray, header: Any, result: TrackResult, overlay: bool) -> Outputs:
        with self._lock:
            labels = {obj_id: label for obj_id, label in self._objects.labels.items() if obj_id in result.object_ids}
            names = {obj_id: self._objects.name(obj_id) for obj_id in labels}
        masks = self.params.publish_masks
        # Objects without a label were removed or reset while this frame was tracked: left out.
        objects = [
            PublishedObject(
                o.obj_id,
                labels[o.obj_id],
                o.probability,
                o.visible,
                _continuous(o.box),
                o.mask if masks else None,
                names[o.obj_id],
                **track_fields(o.track, self._last_seen, o.obj_id),
            )
            for o in result.objects
            if o.obj_id in labels
        ]
        label_map = label_image(result, labels)
        by_label = {label: names[obj_id] for obj_id, label in labels.items()}
        outputs = Outputs(
            header,
            label_image_msg(label_map, header),
            detection_array_msg(header, objects),
            tracked_object_array_msg(header, objects),
            objects,
        )
        if by_label != self._published_labels or not self._label_info_sent:
            self._published_labels = by_label
            outputs.label_info = self.label_info(header)
        if overlay:
            outputs.overlay = rgb_to_image_msg(
                draw_track_states(overlay_image(rgb, label_map, objects), result), header
            )
        return outputs


def build_tracker(params: TrackerParams, node: bool = False) -> Sam2Tracker:
    """The tracker ``params`` describe, built exactly as ``sam2-ros track`` builds its own.

    ``node``: errors name the node's parameters (``checkpoint``) instead of the CLI's flags.
    """
    from sam2_ros.factory import CLI_OPTION_NAMES, TrackerOptions  # noqa: PLC0415 - as before: loaded on build
    from sam2_ros.factory import build_tracker as build  # noqa: PLC0415 - as before: loaded on build
    from sam2_ros.ros.node.params import NODE_OPTION_NAMES  # noqa: PLC0415 - as before: loaded on build

    names = NODE_OPTION_NAMES if node else CLI_OPTION_NAMES
    return build(TrackerOptions.from_settings(params.tracker_settings(), names)).tracker


def label_image(result: TrackResult, labels: dict[int, int]) -> np.ndarray:
    """H x W uint8: each pixel holds the label of the object with the highest positive logit there, else 0.

    Only objects in ``labels`` (id -> label) take part.
    """
    h, w = result.frame_hw
    rows = [i for i, obj_id in enumerate(result.object_ids) if obj_id in labels]
    if not rows:
        return np.zeros((h, w), dtype=np.uint8)
    logits = result.logits[rows]
    lut = torch.tensor([labels[result.object_ids[i]] for i in rows], dtype=torch.uint8, device=logits.device)
    winner = lut[logits.argmax(dim=0)]
    return torch.where((logits > 0).any(dim=0), winner, torch.zeros_like(winner)).cpu().numpy()


def overlay_image(rgb: np.ndarray, label_map: np.ndarray, objects: list[PublishedObject]) -> np.ndarray:
    """RGB frame with each object's label-image pixels tinted in its colour, its box, id and presence."""
    out = rgb.copy()
    for obj in objects:
        color = np.array(object_color(obj.obj_id)[::-1], dtype=np.float32)  # object_color is BGR
        region = label_map == obj.label
        out[region] = (out[region] * (1 - OVERLAY_ALPHA) + color * OVERLAY_ALPHA).astype(np.uint8)
        if obj.visible and obj.box is not None:
            x1, y1, x2, y2 = (round(v) for v in obj.box)
            c = tuple(int(v) for v in color)
            cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), c, 2)
            cv2.putText(
                out,
                f"{obj.caller_id} {obj.score:.2f}",
                (x1, max(y1 - 6, 12)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                c,
                2,
                cv2.LINE_AA,
            )
    return out


def _object_list_response(response_type: Any, objects: list[tuple[str, int]], success: bool, message: str) -> Any:
    return response_type(
        object_ids=[name for name, _ in objects],
        object_indices=np.array([label for _, label in objects], dtype=np.int32),
        success=success,
        message=message,
    )


def _rows(result: TrackResult, keep: set[int]) -> TrackResult:
    """``result`` without the objects removed after it was computed."""
    rows = [i for i, obj_id in enumerate(result.object_ids) if obj_id in keep]
    if len(rows) == len(result.object_ids):
        return result
    return TrackResult(
        result.frame_index,
        result.frame_hw,
        [result.object_ids[i] for i in rows],
        result.logits[rows],
        result.scores[rows],
        result.boxes[rows],
        result.visible[rows],
        result.timings_ms,
        {k: v for k, v in result.states.items() if k in keep},
    )


def _continuous(box: tuple[float, float, float, float] | None) -> Box | None:
    """The tracker's inclusive pixel box as a continuous one (a pixel at column x spans x .. x + 1)."""
    return None if box is None else (box[0], box[1], box[2] + 1, box[3] + 1)


def _clip(box: Box, frame_hw: tuple[int, int] | None) -> Box:
    if frame_hw is None:
        return box
    h, w = frame_hw
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h))


def _time(ns: int | None) -> str:
    return "(unstamped)" if ns is None else f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
