"""The node's 3-D step: pair a tracked colour frame with depth, locate its objects, build the 3-D messages.

Why its own module: ``TrackerCore`` only hands over the frame's result and header; everything
about depth (decoding, pairing, intrinsics, what to publish, what went wrong) lives here. It
never raises into the core: a frame without usable depth simply has no 3-D outputs, and the
reason is counted (diagnostics) and logged, rate-limited per kind.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sam2_ros.geometry import DepthError, IntrinsicsError, locate_result, masked_points
from sam2_ros.ros.interfaces.messages import stamp_ns
from sam2_ros.ros.interfaces.messages3d import (
    DEPTH_INPUT_TYPES,
    DETECTIONS_3D,
    OBJECT_POINTS,
    TARGET_POINT,
    detection3d_array_msg,
    point_cloud_msg,
    point_stamped_msg,
)
from sam2_ros.ros.interfaces.typesys import typestore
from sam2_ros.ros.node.depth_sync import DEPTH_WAIT_S, DepthDecodeError, DepthSync
from sam2_ros.ros.node.log_limits import KindRateLimiter
from sam2_ros.ros.node.params import TrackerParams


class DepthPipeline:
    """Depth and camera-info inputs and the 3-D outputs of one node (``use_depth``).

    ``wait_s``: how long a tracked frame waits for a depth image that may still come (the bag
    replay, which delivers depth before stepping, sets 0).
    """

    def __init__(self, params: TrackerParams, log: Any, wait_s: float = DEPTH_WAIT_S) -> None:
        self.params = params
        self.wait_s = wait_s
        self.log = log
        self.sync = DepthSync(params.depth_tolerance, params.depth_scale)
        #: The most recently tapped object: the default target (else target_object, else the lowest id).
        self.tapped: int | None = None
        self.counts: Counter[str] = Counter()  # unusable inputs and 3-D failures (sync.counts has pairing)
        self._limiter = KindRateLimiter(log)  # each kind of problem logged, rate-limited per kind

    # ------------------------------------------------------------------ inputs
    def on_depth(self, msg: Any) -> None:
        """A sensor_msgs/Image (or its CDR bytes) of depth registered to the colour image; never raises."""
        try:
            if isinstance(msg, (bytes, bytearray, memoryview)):
                msg = typestore().deserialize_cdr(bytes(msg), DEPTH_INPUT_TYPES["depth"])
            self.sync.put_depth(stamp_ns(msg.header) or 0, msg)
        except Exception as exc:  # noqa: BLE001 - malformed CDR raises several types
            self._problem("bad_depth_cdr", f"depth message dropped: not a sensor_msgs/Image ({exc})")

    def on_camera_info(self, msg: Any) -> None:
        """A sensor_msgs/CameraInfo (or its CDR bytes); the latest usable one is kept. Never raises."""
        try:
            if isinstance(msg, (bytes, bytearray, memoryview)):
                msg = typestore().deserialize_cdr(bytes(msg), DEPTH_INPUT_TYPES["camera_info"])
            self.sync.put_camera_info(msg)
        except ValueError as exc:
            self._problem("bad_camera_info", f"camera info ignored: {exc}")
        except Exception as exc:  # noqa: BLE001
            self._problem("bad_camera_info", f"camera info dropped: not a sensor_msgs/CameraInfo ({exc})")

    # ----------------------------------------------------------------- outputs
    def outputs(
        self, result: Any, header: Any, labels: dict[int, int], scores: dict[int, float], cloud: bool
    ) -> dict[str, Any]:
        """{topic: message} for one tracked frame (empty when its depth is missing or unusable).

        ``labels``: published object id -> label-image value; ``scores``: id -> presence probability.
        """
        try:
            frame = self.sync.match(stamp_ns(header), self.wait_s)
        except DepthDecodeError as exc:
            self._problem(f"decode:{exc.args[0][:40]}", f"no 3-D for this frame: {exc}", count=False)
            return {}
        if frame is None:
            return {}
        ids = [obj_id for obj_id in result.object_ids if obj_id in labels]
        try:
            objects = locate_result(result, frame.depth, frame.intrinsics, frame.depth_scale, object_ids=ids)
            out: dict[str, Any] = {DETECTIONS_3D: detection3d_array_msg(header, objects, scores)}
            target = self.params.target_object or self.tapped or min(labels, default=None)
            hit = [o for o in objects if o.obj_id == target and o.valid]
            if hit:
                out[TARGET_POINT] = point_stamped_msg(header, hit[0].position)
            if cloud:
                out[OBJECT_POINTS] = self._cloud(result, frame, [o.obj_id for o in objects], labels, header)
        except (IntrinsicsError, DepthError) as exc:
            self._problem("mismatch", f"no 3-D outputs: {exc}")
            return {}
        self.counts["frames_3d"] += 1
        return out

    def _cloud(self, result: Any, frame: Any, ids: list[int], labels: dict[int, int], header: Any) -> Any:
        rows = [result.object_ids.index(obj_id) for obj_id in ids]
        points, point_labels = masked_points(
            result.masks[rows],
            frame.depth,
            frame.intrinsics,
            [labels[i] for i in ids],
            frame.depth_scale,
            self.params.cloud_stride,
        )
        return point_cloud_msg(header, points.cpu().numpy(), point_labels.cpu().numpy())

    def diagnostics(self) -> dict[str, str]:
        """Counters for the node's diagnostics (totals since start)."""
        pairing = self.sync.counts
        return {
            "depth_paired": str(pairing["paired"]),
            "depth_missing": str(pairing["no_depth"] + pairing["unstamped"]),
            "depth_stale": str(pairing["stale"]),
            "depth_no_camera_info": str(pairing["no_camera_info"]),
            "depth_rejected": str(pairing["bad_depth"] + self.counts["bad_depth_cdr"] + self.counts["mismatch"]),
            "camera_info_rejected": str(self.counts["bad_camera_info"]),
            "frames_3d": str(self.counts["frames_3d"]),
        }

    def _problem(self, kind: str, message: str, count: bool = True) -> None:
        """Count ``kind`` and log it, rate-limited per kind (the counts show in diagnostics)."""
        if count:
            self.counts[kind] += 1
        self._limiter.log("error", kind, message)
