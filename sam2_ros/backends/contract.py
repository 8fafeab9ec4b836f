"""The graph contract: names, shapes and dtypes of every exported graph's inputs and outputs.

One table shared by the ONNX exporter, the ONNX checks, the manifest, the ONNX Runtime
backend and the TensorRT builder/runtime, so the five cannot drift apart. Pure Python (no
torch, no onnx) so any of them can import it cheaply.

All dimensions are static except the object batch ``B`` (every graph but the image encoder
and the mask downsampler) and the number of prompt points ``N`` (mask decoder only). With
image size S, the feature grid is H = W = S / 16. The memory attention takes the tracker's
fixed-size bank unchanged: ``S_slots = max_cond_frames + num_maskmem - 1`` spatial memories
and ``P = max_cond_frames + max_obj_ptrs - 1`` object pointers, unused slots masked.

A memory frame is ``MEM_DIM x H x W`` for SAM 2 / 2.1, or ``T x MEM_DIM`` latents for models
whose spatial perceiver compresses each frame (EdgeTAM: T = 512 at every image size):
``mem_tokens`` selects the layout (None: maps).
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH = "B"  #: the object-batch axis, dynamic in every graph that has one
POINTS = "N"  #: the prompt-point axis, dynamic in the mask decoder
DYNAMIC_DIMS = (BATCH, POINTS)

HIDDEN_DIM = 256  # neck / decoder / memory-attention width of every released model
MEM_DIM = 64  # memory width of every released model

IMAGE_ENCODER = "image_encoder"
MEMORY_ATTENTION = "memory_attention"
MASK_DECODER = "mask_decoder"
MEMORY_ENCODER = "memory_encoder"
MASK_DOWNSAMPLE = "mask_downsample"
GRAPH_NAMES = (IMAGE_ENCODER, MEMORY_ATTENTION, MASK_DECODER, MEMORY_ENCODER, MASK_DOWNSAMPLE)

#: Learned tensors the runtimes apply outside the graphs (``constants.npz``).
CONSTANTS_FILE = "constants.npz"
CONSTANT_SHAPES = {"no_obj_ptr": (1, HIDDEN_DIM), "no_mem_embed": (1, 1, HIDDEN_DIM)}
MANIFEST_FILE = "manifest.json"

Dim = int | str


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output; ``dtype`` is a numpy dtype name (float32, int64, int32, bool)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class GraphSpec:
    """A graph's I/O contract; the file is ``<name>.onnx``."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def dynamic_dims(self) -> set[str]:
        """The symbolic dimension names this graph may use (``B``, ``N``)."""
        return {d for t in self.inputs + self.outputs for d in t.shape if isinstance(d, str)}


def slot_counts(max_cond_frames: int, num_maskmem: int, max_obj_ptrs: int) -> tuple[int, int]:
    """(S_slots, P): the memory bank's spatial-memory and object-pointer slots per object."""
    if max_cond_frames < 1:
        raise ValueError(f"max_cond_frames must be >= 1, got {max_cond_frames}")
    return max_cond_frames + num_maskmem - 1, max_cond_frames + max_obj_ptrs - 1


def memory_shape(image_size: int, mem_tokens: int | None = None) -> tuple[int, ...]:
    """One memory frame of one object: ``MEM_DIM x H x W``, or ``mem_tokens x MEM_DIM`` latents."""
    h = image_size // 16
    return (MEM_DIM, h, h) if mem_tokens is None else (int(mem_tokens), MEM_DIM)


def graph_specs(
    image_size: int,
    max_cond_frames: int,
    num_maskmem: int = 7,
    max_obj_ptrs: int = 16,
    mem_tokens: int | None = None,
) -> dict[str, GraphSpec]:
    """The contract for a model at ``image_size`` with a bank of ``max_cond_frames``.

    ``mem_tokens``: memory tokens per frame for perceiver models (EdgeTAM: 512), None for SAM 2.
    """
    if image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
    s, h = image_size, image_size // 16
    slots, ptrs = slot_counts(max_cond_frames, num_maskmem, max_obj_ptrs)
    b, n, c = BATCH, POINTS, HIDDEN_DIM
    mem = memory_shape(image_size, mem_tokens)
    t = TensorSpec
    specs = [
        GraphSpec(
            IMAGE_ENCODER,
            inputs=(t("image", (1, 3, s, s)),),
            outputs=(
                t("vision_feats", (1, c, h, h)),
                t("high_res_0", (1, c // 8, 4 * h, 4 * h)),
                t("high_res_1", (1, c // 4, 2 * h, 2 * h)),
            ),
        ),
        GraphSpec(
            MEMORY_ATTENTION,
            inputs=(
                t("vision_feats", (b, c, h, h)),
                t("mem_feats", (slots, b, *mem)),
                t("mem_t_pos", (slots, b), "int64"),
                t("mem_valid", (slots, b), "bool"),
                t("obj_ptrs", (ptrs, b, c)),
                t("ptr_t_diff", (ptrs, b)),
                t("ptr_valid", (ptrs, b), "bool"),
            ),
            outputs=(t("pix_feat", (b, c, h, h)),),
        ),
        GraphSpec(
            MASK_DECODER,
            inputs=(
                t("pix_feat", (b, c, h, h)),
                t("high_res_0", (b, c // 8, 4 * h, 4 * h)),
                t("high_res_1", (b, c // 4, 2 * h, 2 * h)),
                t("point_coords", (b, n, 2)),
                t("point_labels", (b, n), "int32"),
                t("mask_input", (b, 1, 4 * h, 4 * h)),
                t("has_mask_input", (b,)),
            ),
            outputs=(
                t("masks", (b, 4, 4 * h, 4 * h)),
                t("ious", (b, 4)),
                t("obj_ptrs", (b, 4, c)),
                t("object_score_logits", (b, 1)),
            ),
        ),
        GraphSpec(
            MEMORY_ENCODER,
            inputs=(
                t("vision_feats", (b, c, h, h)),
                t("masks", (b, 1, s, s)),
                t("from_points", (b,), "bool"),
                t("object_score_logits", (b, 1)),
            ),
            outputs=(t("maskmem_features", (b, *mem)),),
        ),
        GraphSpec(
            MASK_DOWNSAMPLE, inputs=(t("mask", (1, 1, s, s)),), outputs=(t("mask_input", (1, 1, s // 4, s // 4)),)
        ),
    ]
    return {spec.name: spec for spec in specs}
