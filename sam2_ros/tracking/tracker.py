"""Streaming SAM 2 tracker: Meta's video semantics, frame by frame, in constant memory.

Call order, as on a robot: ``track(frame)`` for each new frame; a prompt
(``add_points`` / ``add_box`` / ``add_mask``) applies to the most recent frame and returns
that frame's updated result, exactly like Meta's ``add_new_points_or_box`` on the frame the
video was propagated to. Objects can be added, refined and removed at any time.

Memory of frame t is encoded lazily at the start of ``track(t + 1)``: prompts arriving
after frame t was published still shape its memory (as Meta's predictor does when it
consolidates prompted frames before propagating), and the caller gets frame t's masks
before the memory encoder runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from sam2_ros.model import ImageFeatures, SamOutput
from sam2_ros.settings import FILL_HOLE_AREA, MAX_OBJECTS
from sam2_ros.tracking.backend import Backend
from sam2_ros.tracking.bank import MemoryBank
from sam2_ros.tracking.errors import CapacityError, PromptError, TrackerError, UnknownObjectError
from sam2_ros.tracking.imageops import check_frame, fill_holes, preprocess, upsample_logits
from sam2_ros.tracking.results import TrackResult
from sam2_ros.tracking.track_state import TrackStates

#: Meta clamps previous logits before feeding them back as a mask prompt.
PREV_LOGIT_CLAMP = 32.0


@dataclass
class _FrameOutput:
    """One object's output on the current frame (rows of batched tensors, batch 1)."""

    low_res: Tensor  # 1 x 1 x 4H x 4W logits after hole filling (what is shown and stored)
    mem_mask: Tensor  # 1 x 1 x S x S mask the memory encoder will see
    obj_ptr: Tensor  # 1 x 256
    score: Tensor  # 1 x 1 presence logit
    from_prompt: bool  # prompted: memory mask is binarised (Meta: is_mask_from_pts)
    is_cond: bool  # becomes a conditioning frame


@dataclass
class _Object:
    obj_id: int
    slot: int
    created_frame: int
    out: _FrameOutput | None = None
    pix_feat: Tensor | None = None  # memory-conditioned features on the current frame
    points: Tensor | None = None  # prompts accumulated on the current frame (model pixels)
    labels: Tensor | None = None


class Sam2Tracker:
    """Track many objects through a stream with a fixed-size, device-resident memory bank.

    ``max_objects``: bank capacity (objects tracked at once). ``max_cond_frames``: prompted
    frames remembered per object. ``corrections_as_cond``: a correction on an
    already-tracked frame becomes a conditioning frame (Meta's
    ``add_all_frames_to_correct_as_cond``); on by default because a robot operator's
    correction must outlive the 6-frame recent memory. ``fill_hole_area``: Meta's
    small-hole filling (0 disables). ``sync_timings``: wait for the device after each stage
    so ``TrackResult.timings_ms`` splits GPU time by stage (for benchmarks; adds latency).
    """

    def __init__(
        self,
        backend: Backend,
        max_objects: int = MAX_OBJECTS.default,
        max_cond_frames: int = 4,
        corrections_as_cond: bool = True,
        fill_hole_area: int = FILL_HOLE_AREA.default,
        sync_timings: bool = False,
    ) -> None:
        self.backend = backend
        self.device = backend.device
        self.image_size = backend.image_size
        self.corrections_as_cond = corrections_as_cond
        self.fill_hole_area = fill_hole_area
        self.sync_timings = sync_timings
        self.bank = MemoryBank(
            max_objects,
            backend.feat_size,
            backend.device,
            num_maskmem=backend.num_maskmem,
            max_cond_frames=max_cond_frames,
            max_obj_ptrs=backend.max_obj_ptrs,
            memory_shape=getattr(backend, "memory_shape", None),
        )
        self._objects: dict[int, _Object] = {}
        self._frame_idx = -1
        self._frame_hw: tuple[int, int] | None = None
        self._feats: ImageFeatures | None = None
        #: Per-object TRACKING / OCCLUDED / LOST (observation only); replace it to change its settings.
        self.states = TrackStates()

    # ----------------------------------------------------------------- state
    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    @property
    def frame_index(self) -> int:
        """Index of the most recent frame (-1 before the first)."""
        return self._frame_idx

    def reset(self) -> None:
        """Forget all objects and frames; the bank's storage is kept."""
        self.bank.clear()
        self._objects.clear()
        self._frame_idx = -1
        self._frame_hw = None
        self._feats = None
        self.states.clear()

    def remove_object(self, obj_id: int) -> None:
        obj = self._get(obj_id)
        self.bank.clear([obj.slot])
        del self._objects[obj_id]
        self.states.forget(obj_id)

    # ------------------------------------------------------------------ frames
    def track(self, frame: np.ndarray | Tensor) -> TrackResult:
        """Process the next frame (H x W x 3 uint8 RGB) and return every object's result."""
        check_frame(frame)
        t0 = time.perf_counter()
        image = preprocess(frame, self.image_size, self.device)
        if self.sync_timings and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        result = self.track_image(image, (int(frame.shape[0]), int(frame.shape[1])))
        result.timings_ms["preprocess"] = preprocess_ms
        return result

    def track_image(self, image: Tensor, frame_hw: tuple[int, int]) -> TrackResult:
        """``track`` for an already normalised 1 x 3 x S x S image of a frame of size ``frame_hw``.

        ``timings_ms`` splits the call by stage (``track`` adds ``preprocess``, the frame's resize
        and normalisation): ``memory_encoder`` (the previous frame's
        memory), ``image_encoder``, ``memory_attention`` (bank gather included),
        ``mask_decoder``, ``postprocess`` (hole filling, result assembly) and ``track`` (the
        last three). On an asynchronous device they are enqueue times unless ``sync_timings``.
        """
        clock = _StageClock(time.perf_counter(), self.device if self.sync_timings else None)
        self._commit_memory()
        clock.lap("memory_encoder")
        self._frame_idx += 1
        self._frame_hw = frame_hw
        self._feats = self.backend.encode_image(image)
        clock.lap("image_encoder")
        objs = list(self._objects.values())
        for obj in objs:
            obj.out, obj.pix_feat, obj.points, obj.labels = None, None, None, None
        if objs:
            b = len(objs)
            feats = self._feats.expand(b)
            memory = self.bank.gather([o.slot for o in objs], self._frame_idx, self.backend.compact_memory)
            pix = self.backend.attend_memory(feats, memory)
            clock.lap("memory_attention")
            out = self.backend.decode(pix, feats.high_res, None, None, None, self.backend.use_multimask(False, 0))
            clock.lap("mask_decoder")
            low = fill_holes(out.low_res_masks, self.fill_hole_area)
            for i, obj in enumerate(objs):
                obj.pix_feat = pix[i : i + 1]
                obj.out = _FrameOutput(
                    low[i : i + 1],
                    out.high_res_masks[i : i + 1],
                    out.obj_ptr[i : i + 1],
                    out.object_score_logits[i : i + 1],
                    from_prompt=False,
                    is_cond=False,
                )
        result = self._observed(self._result(clock.ms))  # track states read the masks: after the lazy outputs are made
        clock.lap("postprocess")
        clock.ms["track"] = sum(clock.ms.get(k, 0.0) for k in ("memory_attention", "mask_decoder", "postprocess"))
        return result

    # ----------------------------------------------------------------- prompts
    def add_points(self, obj_id: int, points, labels=None, clear_old_points: bool = False) -> TrackResult:
        """Clicks on the current frame: ``points`` N x 2 pixels (x, y), ``labels`` 1 = object, 0 = not.

        A new ``obj_id`` starts a new object; an existing one is refined. Clicks on the same
        frame accumulate unless ``clear_old_points``.
        """
        pts = self._check_points(points)
        lbl = self._check_labels(labels, len(pts))
        return self._prompt(obj_id, pts, lbl, clear_old_points)

    def add_box(self, obj_id: int, box, points=None, labels=None) -> TrackResult:
        """A box (x1, y1, x2, y2 pixels) on the current frame, optionally with clicks.

        Like Meta's predictor, a box replaces earlier prompts of this object on this frame.
        """
        corners = self._check_box(box)
        pts = corners if points is None else torch.cat([corners, self._check_points(points)])
        extra = 0 if points is None else len(pts) - 2
        lbl = torch.cat([torch.tensor([2, 3]), self._check_labels(labels, extra) if extra else torch.zeros(0)])
        return self._prompt(obj_id, pts, lbl.to(torch.int32), clear_old_points=True)

    def add_mask(self, obj_id: int, mask) -> TrackResult:
        """A binary mask (H x W, frame resolution) for the object on the current frame."""
        self._require_frame()
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
        if tuple(m.shape) != self._frame_hw:
            raise PromptError(f"mask shape {tuple(m.shape)} does not match the frame size {self._frame_hw}")
        if m.dtype != torch.bool:
            if not m.dtype.is_floating_point and m.dtype != torch.uint8:
                raise PromptError(f"mask must be bool, uint8 or float, got {m.dtype}")
            m = m > 0.5 if m.dtype.is_floating_point else m > 0
        obj = self._object_for_prompt(obj_id)
        m = m.to(self.device)[None, None].float()
        s = self.image_size
        if tuple(m.shape[-2:]) != (s, s):
            m = torch.nn.functional.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        feats = self._feats  # one image: batch 1, as a single object needs
        out = self.backend.mask_as_output(feats.vision_feats, feats.high_res, m)
        self._store_prompt_output(obj, out, points=None, labels=None)
        return self._observed(self._result({}))

    # --------------------------------------------------------------- internals
    def _prompt(self, obj_id: int, pts: Tensor, lbl: Tensor, clear_old_points: bool) -> TrackResult:
        obj = self._object_for_prompt(obj_id)
        h, w = self._frame_hw
        coords = pts / torch.tensor([w, h], dtype=torch.float32) * self.image_size
        coords, lbl = coords.to(self.device)[None], lbl.to(self.device)[None]
        if obj.points is not None and not clear_old_points:
            coords, lbl = torch.cat([obj.points, coords], dim=1), torch.cat([obj.labels, lbl], dim=1)
        is_init = obj.created_frame == self._frame_idx
        prev = None
        if obj.out is not None:
            prev = obj.out.low_res.clamp(-PREV_LOGIT_CLAMP, PREV_LOGIT_CLAMP)
        feats = self._feats  # one image: batch 1, as a single object needs
        pix = self.backend.no_memory(feats) if is_init else obj.pix_feat
        out = self.backend.decode(
            pix, feats.high_res, coords, lbl, prev, self.backend.use_multimask(is_init, lbl.shape[1])
        )
        self._store_prompt_output(obj, out, coords, lbl)
        return self._observed(self._result({}))

    def _store_prompt_output(self, obj: _Object, out: SamOutput, points: Tensor | None, labels: Tensor | None) -> None:
        low = fill_holes(out.low_res_masks, self.fill_hole_area)
        s = self.image_size
        mem_mask = upsample_logits(low, (s, s))
        is_init = obj.created_frame == self._frame_idx
        obj.out = _FrameOutput(
            low,
            mem_mask,
            out.obj_ptr,
            out.object_score_logits,
            from_prompt=True,
            is_cond=is_init or self.corrections_as_cond,
        )
        obj.points, obj.labels = points, labels

    def _object_for_prompt(self, obj_id: int) -> _Object:
        self._require_frame()
        if not isinstance(obj_id, (int, np.integer)) or isinstance(obj_id, bool) or obj_id < 0:
            raise PromptError(f"object ids are non-negative integers, got {obj_id!r}")
        obj_id = int(obj_id)
        if obj_id in self._objects:
            return self._objects[obj_id]
        used = {o.slot for o in self._objects.values()}
        free = [s for s in range(self.bank.max_objects) if s not in used]
        if not free:
            raise CapacityError(
                f"already tracking {self.bank.max_objects} objects (max_objects); remove one or raise max_objects"
            )
        obj = _Object(obj_id, free[0], created_frame=self._frame_idx)
        self.bank.clear([obj.slot])
        self._objects[obj_id] = obj
        return obj

    def _commit_memory(self) -> None:
        """Encode and store the memory of the current frame for every object with an output."""
        objs = [o for o in self._objects.values() if o.out is not None]
        if not objs or self._feats is None:
            return
        b = len(objs)
        feats = self._feats.expand(b)
        outs = [o.out for o in objs]
        mem_feats = self.backend.encode_memory(
            feats.vision_feats,
            torch.cat([o.mem_mask for o in outs]),
            torch.cat([o.score for o in outs]),
            torch.tensor([o.from_prompt for o in outs], device=self.device),
        )
        self.bank.write(
            [o.slot for o in objs],
            self._frame_idx,
            mem_feats,
            torch.cat([o.obj_ptr for o in outs]),
            [o.is_cond for o in outs],
        )
        for o in objs:
            o.out = None

    def _result(self, timings: dict[str, float]) -> TrackResult:
        """The current frame's result; full-resolution logits, boxes and visibility are computed on first read."""
        objs = [o for o in self._objects.values() if o.out is not None]
        h, w = self._frame_hw
        if not objs:
            low, scores = torch.zeros(0, 1, 1, 1, device=self.device), torch.zeros(0, device=self.device)
        else:
            low = torch.cat([o.out.low_res for o in objs])
            scores = torch.cat([o.out.score for o in objs])[:, 0].float()
        return TrackResult.from_low_res(self._frame_idx, (h, w), [o.obj_id for o in objs], low, scores, timings)

    def _observed(self, result: TrackResult) -> TrackResult:
        """``result`` with its objects' track states; objects LOST for ``remove_lost_after`` frames are removed."""
        prompted = [o.obj_id for o in self._objects.values() if o.out is not None and o.out.from_prompt]
        result.states, lost = self.states.observe(
            result.frame_index, result.object_ids, result.masks, result.visible, prompted
        )
        for obj_id in lost:
            self.remove_object(obj_id)
        return result

    # -------------------------------------------------------------- validation
    def _require_frame(self) -> None:
        if self._feats is None:
            raise TrackerError("no frame yet: call track(frame) before adding prompts")

    def _get(self, obj_id: int) -> _Object:
        if obj_id not in self._objects:
            raise UnknownObjectError(f"unknown object id {obj_id!r}; tracked ids: {self.object_ids}")
        return self._objects[obj_id]

    def _check_points(self, points) -> Tensor:
        self._require_frame()
        try:
            pts = torch.as_tensor(np.asarray(points, dtype=np.float64), dtype=torch.float32).reshape(-1, 2)
        except (TypeError, ValueError) as exc:
            raise PromptError(f"points must be N x 2 numbers (x, y), got {points!r}") from exc
        if len(pts) == 0:
            raise PromptError("no points given")
        if not torch.isfinite(pts).all():
            raise PromptError(f"points must be finite, got {pts.tolist()}")
        h, w = self._frame_hw
        outside = (pts[:, 0] < 0) | (pts[:, 0] > w) | (pts[:, 1] < 0) | (pts[:, 1] > h)
        if outside.any():
            raise PromptError(f"points {pts[outside].tolist()} lie outside the {w}x{h} frame")
        return pts

    @staticmethod
    def _check_labels(labels, n: int) -> Tensor:
        if labels is None:
            return torch.ones(n, dtype=torch.int32)
        lbl = torch.as_tensor(np.asarray(labels)).reshape(-1)
        if len(lbl) != n:
            raise PromptError(f"{n} points but {len(lbl)} labels")
        if not torch.isin(lbl, torch.tensor([0, 1])).all():
            raise PromptError(f"labels must be 1 (object) or 0 (background), got {lbl.tolist()}")
        return lbl.to(torch.int32)

    def _check_box(self, box) -> Tensor:
        self._require_frame()
        try:
            b = [float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError) as exc:
            raise PromptError(f"box must be 4 numbers (x1, y1, x2, y2), got {box!r}") from exc
        if len(b) != 4 or not all(math.isfinite(v) for v in b):
            raise PromptError(f"box must be 4 finite numbers (x1, y1, x2, y2), got {box!r}")
        x1, y1, x2, y2 = b
        h, w = self._frame_hw
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise PromptError(
                f"box {b} is empty or outside the {w}x{h} frame (need 0 <= x1 < x2 <= W, 0 <= y1 < y2 <= H)"
            )
        return torch.tensor([[x1, y1], [x2, y2]], dtype=torch.float32)


class _StageClock:
    """Per-stage wall times in ms; with a CUDA ``sync_device``, each lap waits for the device first."""

    def __init__(self, t0: float, sync_device: torch.device | None) -> None:
        self.ms: dict[str, float] = {}
        self._last = t0
        self._sync = sync_device is not None and sync_device.type == "cuda"
        self._device = sync_device

    def lap(self, stage: str) -> None:
        if self._sync:
            torch.cuda.synchronize(self._device)
        now = time.perf_counter()
        self.ms[stage] = (now - self._last) * 1e3
        self._last = now
