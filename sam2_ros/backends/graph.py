"""The tracker's backend protocol on top of the five exported graphs, whatever runs them.

ONNX Runtime and TensorRT differ only in how a graph is executed; defaults, learned
constants applied outside the graphs, the mask-as-output path and Meta's output selection
are the same and live here, so both runtimes share one tested code path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sam2_ros.backends import contract
from sam2_ros.model import DecoderOutputs, ImageFeatures, SamOutput, finish_decoding
from sam2_ros.model.sam2 import mask_prompt_output
from sam2_ros.tracking.bank import MemoryBatch

#: A graph as the backend calls it: named input tensors in, named output tensors out.
Runner = Callable[..., dict[str, Tensor]]


@dataclass(frozen=True)
class ModelSettings:
    """What the runtime needs to know about the exported model (``engines.json["model"]``)."""

    name: str
    image_size: int
    max_cond_frames: int
    num_maskmem: int
    max_obj_ptrs: int
    stability: tuple[float, float] | None  # Meta's dynamic single-mask fallback (delta, thresh)
    multimask_points: tuple[int, int]  # multimask output for min <= clicks <= max
    mem_tokens: int | None = None  # memory tokens per frame (EdgeTAM's perceiver: 512); None: H x W maps

    @property
    def feat_size(self) -> int:
        return self.image_size // 16

    @property
    def memory_shape(self) -> tuple[int, ...]:
        """One memory frame of one object, as the bank stores it and the graphs take it."""
        return contract.memory_shape(self.image_size, self.mem_tokens)

    @property
    def memory_slots(self) -> tuple[int, int]:
        """(spatial memories, object pointers) per object in the bank the graphs take."""
        return self.max_cond_frames + self.num_maskmem - 1, self.max_cond_frames + self.max_obj_ptrs - 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image_size": self.image_size,
            "max_cond_frames": self.max_cond_frames,
            "num_maskmem": self.num_maskmem,
            "max_obj_ptrs": self.max_obj_ptrs,
            "stability": list(self.stability) if self.stability else None,
            "multimask_points": list(self.multimask_points),
            "mem_tokens": self.mem_tokens,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSettings:
        stability = d["stability"]
        return cls(
            str(d["name"]),
            int(d["image_size"]),
            int(d["max_cond_frames"]),
            int(d["num_maskmem"]),
            int(d["max_obj_ptrs"]),
            None if stability is None else (float(stability[0]), float(stability[1])),
            (int(d["multimask_points"][0]), int(d["multimask_points"][1])),
            None if d.get("mem_tokens") is None else int(d["mem_tokens"]),
        )


class GraphBackend:
    """The tracker's :class:`~sam2_ros.tracking.backend.Backend` on top of the five exported graphs.

    Everything a graph runtime needs besides running graphs lives here: default prompts
    (one padding point, an empty mask input), the learned constants applied outside the
    graphs, the mask-as-output path, and Meta's output selection via ``finish_decoding``.
    ``runners`` map graph names to callables taking and returning named tensors in the
    export contract's dtypes; :class:`TensorRTBackend` passes engines.
    """

    name = "graphs"
    compact_memory = False  # the graphs take the full, fixed-size bank

    def __init__(
        self,
        settings: ModelSettings,
        runners: Mapping[str, Runner],
        constants: Mapping[str, Tensor],
        device: torch.device | str,
    ) -> None:
        self.settings = settings
        self.device = torch.device(device)
        self.image_size = settings.image_size
        self.feat_size = settings.feat_size
        self.num_maskmem = settings.num_maskmem
        self.max_obj_ptrs = settings.max_obj_ptrs
        self.max_cond_frames = settings.max_cond_frames
        self.memory_shape = settings.memory_shape
        self._run = dict(runners)
        self._no_obj_ptr = constants["no_obj_ptr"].to(self.device, torch.float32).reshape(1, -1)
        self._no_mem_embed = constants["no_mem_embed"].to(self.device, torch.float32).reshape(1, -1, 1, 1)

    def _ordered(self) -> contextlib.AbstractContextManager:
        """Context every call runs in (TensorRT: its CUDA stream)."""
        return contextlib.nullcontext()

    def encode_image(self, image: Tensor) -> ImageFeatures:
        with self._ordered():
            out = self._run["image_encoder"](image=image.float())
            feats = out["vision_feats"]
            # The memory-attention graph holds the image position encoding as a constant;
            # an empty tensor keeps ImageFeatures.expand working without computing it.
            pos = feats.new_empty((1, 0, *feats.shape[-2:]))
            return ImageFeatures(feats, pos, [out["high_res_0"], out["high_res_1"]])

    def no_memory(self, feats: ImageFeatures) -> Tensor:
        with self._ordered():
            return feats.vision_feats + self._no_mem_embed

    def attend_memory(self, feats: ImageFeatures, memory: MemoryBatch) -> Tensor:
        slots, ptrs = self.settings.memory_slots
        if memory.feats.shape[0] != slots or memory.ptrs.shape[0] != ptrs:
            raise ValueError(
                f"the memory bank has {memory.feats.shape[0]} spatial and {memory.ptrs.shape[0]} pointer slots, "
                f"the exported graphs take {slots} and {ptrs} (max_cond_frames={self.max_cond_frames}): create "
                f"the tracker with Sam2Tracker(backend, max_cond_frames={self.max_cond_frames})"
            )
        with self._ordered():
            return self._run["memory_attention"](
                vision_feats=feats.vision_feats.float(),
                mem_feats=memory.feats.float(),
                mem_t_pos=memory.t_pos.long(),
                mem_valid=memory.valid.bool(),
                obj_ptrs=memory.ptrs.float(),
                ptr_t_diff=memory.ptr_t_diff.float(),
                ptr_valid=memory.ptr_valid.bool(),
            )["pix_feat"]

    def decode(
        self,
        pix_feat: Tensor,
        high_res: list[Tensor],
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_inputs: Tensor | None,
        multimask: bool,
    ) -> SamOutput:
        with self._ordered():
            return finish_decoding(
                self._decode_all(pix_feat, high_res, point_coords, point_labels, mask_inputs),
                multimask,
                self._no_obj_ptr,
                self.image_size,
                self.settings.stability,
            )

    def _decode_all(
        self,
        pix_feat: Tensor,
        high_res: list[Tensor],
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_inputs: Tensor | None,
    ) -> DecoderOutputs:
        """The decoder graph with the eager model's defaults (``Sam2Model.decode_all``)."""
        b, dev = pix_feat.shape[0], pix_feat.device
        if point_coords is None:  # no clicks: one padding point, as the eager model
            point_coords = torch.zeros(b, 1, 2, device=dev)
            point_labels = torch.full((b, 1), -1, dtype=torch.int32, device=dev)
        size = (4 * self.feat_size, 4 * self.feat_size)
        if mask_inputs is None:
            mask_input, has_mask = torch.zeros(b, 1, *size, device=dev), torch.zeros(b, device=dev)
        else:
            mask_input, has_mask = mask_inputs.float(), torch.ones(b, device=dev)
            if tuple(mask_input.shape[-2:]) != size:
                mask_input = F.interpolate(mask_input, size=size, mode="bilinear", align_corners=False, antialias=True)
        out = self._run["mask_decoder"](
            pix_feat=pix_feat.float(),
            high_res_0=high_res[0].float(),
            high_res_1=high_res[1].float(),
            point_coords=point_coords.float(),
            point_labels=point_labels.to(torch.int32),
            mask_input=mask_input,
            has_mask_input=has_mask,
        )
        return DecoderOutputs(out["masks"], out["ious"], out["obj_ptrs"], out["object_score_logits"])

    def mask_as_output(self, pix_feat: Tensor, high_res: list[Tensor], mask: Tensor) -> SamOutput:
        """A mask prompt as the output (logits +/-10); the decoder only makes its pointer.

        The same steps as ``Sam2Model.mask_as_output``, with the 4x4 stride-4 convolution as
        the ``mask_downsample`` graph (batch 1 per call, as the tracker sends).
        """
        with self._ordered():
            mask = mask.float()
            down = torch.cat(
                [self._run["mask_downsample"](mask=mask[i : i + 1])["mask_input"] for i in range(mask.shape[0])]
            )
            ptr = finish_decoding(
                self._decode_all(pix_feat, high_res, None, None, down),
                False,
                self._no_obj_ptr,
                self.image_size,
                self.settings.stability,
            ).obj_ptr
            return mask_prompt_output(mask, ptr, self._no_obj_ptr)

    def encode_memory(
        self, vision_feats: Tensor, high_res_masks: Tensor, object_score_logits: Tensor, from_points: Tensor
    ) -> Tensor:
        with self._ordered():
            return self._run["memory_encoder"](
                vision_feats=vision_feats.float(),
                masks=high_res_masks.float(),
                from_points=from_points.bool(),
                object_score_logits=object_score_logits.float(),
            )["maskmem_features"]

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """Meta's rule (three candidates for one click); the frame type does not matter."""
        del is_init_cond_frame
        lo, hi = self.settings.multimask_points
        return lo <= num_points <= hi
