"""Inference backends behind one small protocol.

The tracker never touches a model directly: per frame it asks a backend to encode the
image once, condition the objects' features on their memory, decode masks from prompts,
and encode new memories. Those four steps are exactly the graphs the ONNX/TensorRT export
produces, so every backend runs the same tracker code path.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from sam2_ros.model import ImageFeatures, Sam2Model, SamOutput
from sam2_ros.tracking.bank import MemoryBatch


@runtime_checkable
class Backend(Protocol):
    """What the tracker needs from an inference engine.

    Shapes: image 1 x 3 x S x S (normalised), features at stride 16 (H = W = S/16),
    B objects per call. All tensors stay on ``device``.
    """

    name: str
    device: torch.device
    image_size: int
    feat_size: int
    num_maskmem: int
    max_obj_ptrs: int
    #: One frame's memory for one object, as the bank stores it (64 x H x W; EdgeTAM: 512 x 64).
    memory_shape: tuple[int, ...]
    #: Whether ``attend_memory`` takes only the bank slots in use (eager) or the full
    #: fixed-size bank (graphs with static shapes).
    compact_memory: bool

    def encode_image(self, image: Tensor) -> ImageFeatures: ...

    def no_memory(self, feats: ImageFeatures) -> Tensor: ...

    def attend_memory(self, feats: ImageFeatures, memory: MemoryBatch) -> Tensor: ...

    def decode(
        self,
        pix_feat: Tensor,
        high_res: list[Tensor],
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_inputs: Tensor | None,
        multimask: bool,
    ) -> SamOutput: ...

    def mask_as_output(self, pix_feat: Tensor, high_res: list[Tensor], mask: Tensor) -> SamOutput: ...

    def encode_memory(
        self, vision_feats: Tensor, high_res_masks: Tensor, object_score_logits: Tensor, from_points: Tensor
    ) -> Tensor: ...

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool: ...


class TorchBackend:
    """PyTorch eager (optionally ``torch.compile``d) backend on CPU or CUDA.

    ``dtype`` float32 runs exactly; bfloat16/float16 run under autocast, like Meta's demo.
    ``compile`` ("default", "reduce-overhead" for CUDA graphs, "max-autotune") compiles
    the image encoder, whose input shape never changes.
    """

    name = "torch"
    compact_memory = True
    #: Objects per memory-encoder call on a CPU, and the most per memory-attention call. There, many
    #: objects in one batch cost more per object than a few (the batch's working set outgrows the
    #: caches; benchmarks/bench_objects.py at 16 and 32 objects), so objects go in chunks; a GPU takes
    #: them all.
    CPU_OBJECT_CHUNK = 4
    #: Working set one memory-attention call may have on a CPU (see ``cpu_attention_chunk``), set on
    #: a 2-core EPYC with 32 MiB of L3. Over it, objects together cost more than alone: at 512 px
    #: SAM 2.1-T's memory attention took 4.4x one object's time for 2 objects in one call.
    CPU_ATTENTION_BYTES = 24 * 2**20

    def __init__(
        self,
        model: Sam2Model,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        compile: str | None = None,
        object_chunk: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        cpu = self.device.type == "cpu"
        self.object_chunk = object_chunk or (self.CPU_OBJECT_CHUNK if cpu else None)
        self.attention_chunk = object_chunk or (self.cpu_attention_chunk(model) if cpu else None)
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"unsupported dtype {dtype}")
        if dtype == torch.float16 and self.device.type == "cpu":
            raise ValueError("float16 is not supported on CPU; use float32 or bfloat16")
        self.model = model.to(self.device).eval()
        self.dtype = dtype
        self.image_size = model.image_size
        self.feat_size = model.feat_size
        self.num_maskmem = model.num_maskmem
        self.max_obj_ptrs = model.config.max_obj_ptrs_in_encoder
        self.memory_shape = model.memory_shape
        self._encoder = self.model.encode_image
        if compile:
            self._encoder = torch.compile(self.model.encode_image, mode=compile, fullgraph=False, dynamic=False)
        with torch.inference_mode():
            self._mem_pos = self.model.memory_pos_enc()

    @classmethod
    def cpu_attention_chunk(cls, model: Sam2Model) -> int:
        """Objects per memory-attention call on a CPU: as many as keep the call's working set within
        ``CPU_ATTENTION_BYTES``, 1 to ``CPU_OBJECT_CHUNK``.

        Per object, float32: the keys and values of a full bank (every memory frame's tokens and the
        object pointers' tokens, projected to the attention width) and the MLP's hidden activations
        over the image tokens. It grows with the bank (SAM 2.1: 7 maps of (size/16)^2 tokens; EdgeTAM:
        7 x 512 latents) and with the image size: SAM 2.x at 256 px gets 4 (as before this rule),
        EdgeTAM at 256 px 2, both at 512 px or more 1. There, 2 objects in one call had cost 3-4.4x
        one (benchmarks/results/cpu_edgetam_{512,1024}_objects_before_chunks vs ..._objects).
        """
        queries, hidden = model.feat_size**2, model.memory_attention.layers[0].dim_feedforward
        per_object = 4 * (2 * model.bank_tokens * model.hidden_dim + queries * hidden)
        return max(1, min(cls.CPU_OBJECT_CHUNK, cls.CPU_ATTENTION_BYTES // per_object))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def encode_image(self, image: Tensor) -> ImageFeatures:
        with self._autocast():
            return self._encoder(image)

    @torch.inference_mode()
    def no_memory(self, feats: ImageFeatures) -> Tensor:
        return self.model.no_memory_features(feats.vision_feats)

    @torch.inference_mode()
    def attend_memory(self, feats: ImageFeatures, memory: MemoryBatch) -> Tensor:
        """Memory attention for the B objects, ``attention_chunk`` at a time (each object attends alone)."""
        m, b = memory, feats.vision_feats.shape[0]
        step = self.attention_chunk or b
        with self._autocast():
            parts = [
                self.model.condition_on_bank(
                    feats.vision_feats[i : i + step],
                    feats.vision_pos[i : i + step],
                    m.feats[:, i : i + step].float(),
                    self._mem_pos,
                    m.t_pos[:, i : i + step],
                    m.valid[:, i : i + step],
                    m.ptrs[:, i : i + step],
                    m.ptr_t_diff[:, i : i + step],
                    m.ptr_valid[:, i : i + step],
                )
                for i in range(0, b, step)
            ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @torch.inference_mode()
    def decode(self, pix_feat, high_res, point_coords, point_labels, mask_inputs, multimask) -> SamOutput:
        with self._autocast():
            return self.model.sam_heads(pix_feat, high_res, point_coords, point_labels, mask_inputs, multimask)

    @torch.inference_mode()
    def mask_as_output(self, pix_feat, high_res, mask) -> SamOutput:
        with self._autocast():
            return self.model.mask_as_output(pix_feat, high_res, mask)

    @torch.inference_mode()
    def encode_memory(self, vision_feats, high_res_masks, object_score_logits, from_points) -> Tensor:
        """Memory features of B objects, ``object_chunk`` at a time (each object's memory is its own)."""
        b = high_res_masks.shape[0]
        step = self.object_chunk or b
        with self._autocast():
            parts = [
                self.model.encode_memory(
                    vision_feats[i : i + step],
                    high_res_masks[i : i + step],
                    object_score_logits[i : i + step],
                    from_points[i : i + step],
                )[0]
                for i in range(0, b, step)
            ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        return self.model.use_multimask(is_init_cond_frame, num_points)
