"""Fixed-capacity memory bank, preallocated on the backend's device.

Meta's video predictor keeps every past frame's output in dicts, so memory grows with the
video. A robot's stream never ends, so the bank here holds, per object slot, exactly what
Meta's selection rules can still reach:

* ``cond``: up to ``max_cond_frames`` conditioning (prompted) frames. When full, the
  oldest is evicted, which is what Meta's ``select_closest_cond_frames`` would do with
  ``max_cond_frames_in_attn`` = capacity on a forward-only stream (the most recent ones are
  always the closest).
* ``recent``: a ring of the last ``num_maskmem - 1`` frames' memory features.
* ``ptrs``: a ring of the last ``max_obj_ptrs - 1`` frames' object pointers.

Tensors live on the device and never change size; only small integer bookkeeping (which
frame sits in which slot) lives on the host, where the selection logic runs. Memory
features are stored in bfloat16, as Meta's predictor stores them.

The bank is sized from the model: a frame's memory is whatever the memory encoder makes for
one object (``memory_shape``): SAM 2's 64 x H x W map (64 x 64 x 64 at 1024 px), or EdgeTAM's
512 perceiver latents x 64 (256 1-D + 256 on a 16 x 16 grid, at any image size), 8x fewer
values per frame at 1024 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

EMPTY = -1  # frame index of an unused slot


@dataclass
class MemoryBatch:
    """The memory a batch of B objects attends to on one frame (all fixed-size).

    ``feats``: S x B x (memory shape: 64 x H x W, or T x 64 latents) spatial memories;
    ``t_pos``: S x B Meta slot numbers
    (0 = conditioning frame, k = the frame ``num_maskmem - k`` back); ``valid``: S x B.
    ``ptrs``: P x B x 256 object pointers; ``ptr_t_diff``: P x B signed frame distances;
    ``ptr_valid``: P x B.
    """

    feats: Tensor
    t_pos: Tensor
    valid: Tensor
    ptrs: Tensor
    ptr_t_diff: Tensor
    ptr_valid: Tensor


class MemoryBank:
    """Per-object memory slots; see the module docstring for what is kept and why."""

    def __init__(
        self,
        max_objects: int,
        feat_size: int,
        device: torch.device | str,
        num_maskmem: int = 7,
        max_cond_frames: int = 4,
        max_obj_ptrs: int = 16,
        mem_dim: int = 64,
        hidden_dim: int = 256,
        feat_dtype: torch.dtype = torch.bfloat16,
        memory_shape: tuple[int, ...] | None = None,
    ) -> None:
        """``memory_shape``: one frame's memory for one object (default ``mem_dim`` x H x W)."""
        if max_cond_frames < 1:
            raise ValueError("max_cond_frames must be >= 1")
        if max_objects < 1:
            raise ValueError("max_objects must be >= 1")
        self.max_objects = max_objects
        self.num_maskmem = num_maskmem
        self.max_obj_ptrs = max_obj_ptrs
        self.num_recent = num_maskmem - 1
        self.num_recent_ptrs = max_obj_ptrs - 1
        self.max_cond = max_cond_frames
        self.device = torch.device(device)
        n, k, r, p, h = max_objects, max_cond_frames, self.num_recent, self.num_recent_ptrs, feat_size
        self.memory_shape = tuple(memory_shape) if memory_shape is not None else (mem_dim, h, h)
        kw = dict(device=self.device)
        # Zero-initialised: masked slots are multiplied by zero attention weights, which
        # must not meet NaNs from uninitialised memory.
        self.cond_feats = torch.zeros(n, k, *self.memory_shape, dtype=feat_dtype, **kw)
        self.cond_ptrs = torch.zeros(n, k, hidden_dim, **kw)
        self.recent_feats = torch.zeros(n, r, *self.memory_shape, dtype=feat_dtype, **kw)
        self.recent_ptrs = torch.zeros(n, p, hidden_dim, **kw)
        # Host bookkeeping: frame index per slot (EMPTY when unused).
        self.cond_frame = np.full((n, k), EMPTY, dtype=np.int64)
        self.recent_frame = np.full((n, r), EMPTY, dtype=np.int64)
        self.ptr_frame = np.full((n, p), EMPTY, dtype=np.int64)

    # ----------------------------------------------------------------- writes
    def clear(self, slots: list[int] | None = None) -> None:
        """Forget objects (all when ``slots`` is None). Tensors keep their storage."""
        idx = slice(None) if slots is None else slots
        for table in (self.cond_frame, self.recent_frame, self.ptr_frame):
            table[idx] = EMPTY
        for t in (self.cond_feats, self.cond_ptrs, self.recent_feats, self.recent_ptrs):
            t[idx] = 0

    def write(self, slots: list[int], frame_idx: int, feats: Tensor, ptrs: Tensor, is_cond: list[bool]) -> None:
        """Store frame ``frame_idx``'s memory for objects ``slots`` (rows of feats/ptrs).

        Every frame enters the recent rings; prompted frames also take a conditioning slot
        (evicting that object's oldest when full). A conditioning frame still in a
        ring is skipped by ``gather`` while it holds a conditioning slot, as in Meta's
        predictor where a frame is either conditioning or not.
        """
        rows = torch.as_tensor(slots, device=self.device)
        r, p = frame_idx % self.num_recent, frame_idx % self.num_recent_ptrs
        self.recent_feats[rows, r] = feats.to(self.recent_feats.dtype)
        self.recent_ptrs[rows, p] = ptrs.to(self.recent_ptrs.dtype)
        self.recent_frame[slots, r] = frame_idx
        self.ptr_frame[slots, p] = frame_idx
        for i, (slot, cond) in enumerate(zip(slots, is_cond)):
            if not cond:
                continue
            frames = self.cond_frame[slot]
            same = np.flatnonzero(frames == frame_idx)
            free = np.flatnonzero(frames == EMPTY)
            k = same[0] if len(same) else free[0] if len(free) else int(np.argmin(frames))
            self.cond_frame[slot, k] = frame_idx
            self.cond_feats[slot, k] = feats[i].to(self.cond_feats.dtype)
            self.cond_ptrs[slot, k] = ptrs[i].to(self.cond_ptrs.dtype)

    # ------------------------------------------------------------------ reads
    def gather(self, slots: list[int], frame_idx: int, compact: bool = False) -> MemoryBatch:
        """The memory objects ``slots`` attend to when processing frame ``frame_idx``.

        Spatial memories: all conditioning slots (t_pos 0), then the frames
        ``frame_idx - 1 .. frame_idx - (num_maskmem - 1)`` (t_pos num_maskmem-1 .. 1).
        Pointers: conditioning frames not after ``frame_idx`` (Meta's
        ``only_obj_ptrs_in_the_past_for_eval``) and the previous ``max_obj_ptrs - 1`` frames.

        ``compact`` drops the slots no object in the batch uses (cheaper eager attention);
        exported graphs take the full, fixed-size batch. The choice is made on the host
        bookkeeping, so only used slots are copied and the device is never synchronised.
        """
        cond = self.cond_frame[slots]  # B x K
        recent = self.recent_frame[slots]  # B x R
        ptr = self.ptr_frame[slots]  # B x P
        in_cond = (recent[:, :, None] == cond[:, None, :]).any(-1)
        back = frame_idx - recent  # frames back, 1..R when usable
        recent_ok = (recent != EMPTY) & (back >= 1) & (back <= self.num_recent) & ~in_cond
        ptr_in_cond = (ptr[:, :, None] == cond[:, None, :]).any(-1)
        ptr_back = frame_idx - ptr
        ptr_ok = (ptr != EMPTY) & (ptr_back >= 1) & (ptr_back <= self.num_recent_ptrs) & ~ptr_in_cond
        cond_ok = cond != EMPTY
        cond_ptr_ok = cond_ok & (cond <= frame_idx)

        valid = np.concatenate([cond_ok, recent_ok], axis=1).T  # S x B
        t_pos = np.concatenate([np.zeros_like(cond), self.num_maskmem - back], axis=1).T
        t_pos = np.where(valid, t_pos, 0)
        ptr_valid = np.concatenate([cond_ptr_ok, ptr_ok], axis=1).T  # P x B
        t_diff = np.concatenate([frame_idx - cond, ptr_back], axis=1).T
        t_diff = np.where(ptr_valid, t_diff, 0)

        keep = np.flatnonzero(valid.any(axis=1)) if compact else np.arange(len(valid))
        keep_p = np.flatnonzero(ptr_valid.any(axis=1)) if compact else np.arange(len(ptr_valid))
        valid, t_pos, ptr_valid, t_diff = valid[keep], t_pos[keep], ptr_valid[keep_p], t_diff[keep_p]

        def dev(a: np.ndarray, dtype: torch.dtype) -> Tensor:
            return torch.as_tensor(a, dtype=dtype).to(self.device, non_blocking=True)

        rows = dev(np.asarray(slots), torch.long)[:, None]

        def pick(cond_t: Tensor, recent_t: Tensor, kept: np.ndarray) -> Tensor:
            """Kept slots (conditioning ones first), objects second: S x B x ..."""
            k = self.max_cond
            parts = [
                cond_t[rows, dev(kept[kept < k], torch.long)[None]],
                recent_t[rows, dev(kept[kept >= k] - k, torch.long)[None]],
            ]
            return torch.cat(parts, dim=1).transpose(0, 1)

        feats = pick(self.cond_feats, self.recent_feats, keep)
        ptrs = pick(self.cond_ptrs, self.recent_ptrs, keep_p)

        return MemoryBatch(
            feats,
            dev(t_pos, torch.long),
            dev(valid, torch.bool),
            ptrs,
            dev(t_diff, torch.float32),
            dev(ptr_valid, torch.bool),
        )

    # ------------------------------------------------------------- accounting
    def tensors(self) -> list[Tensor]:
        return [self.cond_feats, self.cond_ptrs, self.recent_feats, self.recent_ptrs]

    def nbytes(self) -> int:
        """Device bytes held by the bank (constant for its lifetime)."""
        return sum(t.numel() * t.element_size() for t in self.tensors())
