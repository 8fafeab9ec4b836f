"""One ``nn.Module`` per exported graph, each a thin wrapper over :class:`Sam2Model`'s steps.

The wrappers add nothing to the model's arithmetic; they only fix the graph contract
(:mod:`sam2_ros.backends.contract`): tensor names, which tensors are inputs, and which are constants
of the image size baked into the graph (image and memory position encodings, the prompt
encoder's dense encoding). Branches that the eager model takes in Python become either
fixed choices (the decoder always gets points: a padding point when there is no click) or
arithmetic selects on an input (``has_mask_input``), so one graph serves every call.

Image preprocessing (resize + normalisation) stays outside the graphs, in torch on the
device, for every backend (see :mod:`sam2_ros.tracking.imageops`): one image-encoder graph
then serves any camera resolution, and the resize stays close to Meta's loader (Pillow's
antialiased bicubic: at most 9 grey levels apart, 0.2 on average; tests/test_preprocessing_pillow.py).
TensorRT could not build that resize into an
engine anyway: the ONNX-TensorRT operator matrix (onnx/onnx-tensorrt ``docs/operators.md``,
TensorRT 10) lists for ``Resize`` only the ``nearest`` and ``linear`` modes and states
"Antialiasing is not supported".
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from sam2_ros.backends import contract
from sam2_ros.backends.contract import GraphSpec
from sam2_ros.model import Sam2Model
from sam2_ros.model.position_encoding import PositionEmbeddingSine
from sam2_ros.utils.files import atomic_path

#: The dynamo exporter implements opset 18 and up (its conversion down to 17 fails on
#: ReduceMean's axes input); TensorRT 10.0 parses opsets 9 to 20.
DEFAULT_OPSET = 18
#: Constant-folding limit (elements per tensor) for weight-only subgraphs: the folded Hiera
#: position embedding is 1 x C x S/4 x S/4 (9.4 M elements for the large model at 1024 px).
FOLD_LIMIT = 1 << 24


class ImageEncoderGraph(nn.Module):
    """Normalised 1 x 3 x S x S image -> stride-16 features and the projected high-res maps."""

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feats = self.model.encode_image(image)
        return feats.vision_feats, feats.high_res[0], feats.high_res[1]


class MemoryAttentionGraph(nn.Module):
    """Features of B objects conditioned on their fixed-size, partly masked memory bank.

    Takes the tracker's :class:`~sam2_ros.tracking.bank.MemoryBatch` as is (all slots, with
    validity masks) instead of the compacted bank the eager backend uses: the masked
    attention equals the compacted one because padding is in whole memory frames and
    pointers (see :mod:`sam2_ros.model.memory_attention`). The image and memory position
    encodings depend only on the image size and are constants here.
    """

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        self.model = model
        h = model.feat_size
        self.register_buffer("vision_pos", image_pos_enc(h), persistent=False)
        self.register_buffer("mem_pos", model.memory_pos_enc().detach().clone(), persistent=False)

    def forward(
        self,
        vision_feats: Tensor,
        mem_feats: Tensor,
        mem_t_pos: Tensor,
        mem_valid: Tensor,
        obj_ptrs: Tensor,
        ptr_t_diff: Tensor,
        ptr_valid: Tensor,
    ) -> Tensor:
        b = vision_feats.shape[0]
        return self.model.condition_on_bank(
            vision_feats,
            self.vision_pos.expand(b, -1, -1, -1),
            mem_feats,
            self.mem_pos,
            mem_t_pos,
            mem_valid,
            obj_ptrs,
            ptr_t_diff,
            ptr_valid,
        )


class MaskDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for B objects: all four masks, IoUs, pointers, scores.

    ``has_mask_input`` (B floats, 1 or 0) picks, per object, the mask-prompt embedding of
    ``mask_input`` or the learned no-mask embedding: ``has * mask_emb + (1 - has) * no_mask``
    is exactly one of :class:`PromptEncoder`'s two branches for 0/1 values (finite
    embeddings times 0 are 0), so one graph serves prompts with and without a mask.
    Points are always given; the eager model's "no points" is one padding point (label -1).
    """

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        pix_feat: Tensor,
        high_res_0: Tensor,
        high_res_1: Tensor,
        point_coords: Tensor,
        point_labels: Tensor,
        mask_input: Tensor,
        has_mask_input: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        m = self.model
        prompt = m.sam_prompt_encoder
        sparse, mask_dense = prompt(points=(point_coords, point_labels), boxes=None, masks=mask_input)
        no_mask_dense = prompt.no_mask_embed.weight.reshape(1, -1, 1, 1)
        has = has_mask_input.to(mask_dense.dtype).view(-1, 1, 1, 1)
        dense = has * mask_dense + (1.0 - has) * no_mask_dense
        masks, ious, tokens, obj_logits = m.sam_mask_decoder.predict_masks(
            image_embeddings=pix_feat,
            image_pe=prompt.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_0, high_res_1],
        )
        return masks, ious, m.obj_ptr_proj(tokens), obj_logits


class MemoryEncoderGraph(nn.Module):
    """Memory features of B objects from the frame's features and their high-res mask logits."""

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, vision_feats: Tensor, masks: Tensor, from_points: Tensor, object_score_logits: Tensor) -> Tensor:
        features, _ = self.model.encode_memory(vision_feats, masks, object_score_logits, from_points)
        return features


class MaskDownsampleGraph(nn.Module):
    """A 1 x 1 x S x S mask prompt -> the decoder's 1 x 1 x S/4 x S/4 mask input."""

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, mask: Tensor) -> Tensor:
        return self.model.mask_downsample(mask)


WRAPPERS: dict[str, type[nn.Module]] = {
    contract.IMAGE_ENCODER: ImageEncoderGraph,
    contract.MEMORY_ATTENTION: MemoryAttentionGraph,
    contract.MASK_DECODER: MaskDecoderGraph,
    contract.MEMORY_ENCODER: MemoryEncoderGraph,
    contract.MASK_DOWNSAMPLE: MaskDownsampleGraph,
}


def image_pos_enc(feat_size: int, device: torch.device | str = "cpu") -> Tensor:
    """The stride-16 image position encoding, 1 x 256 x H x W: a function of the size alone."""
    enc = PositionEmbeddingSine(num_pos_feats=contract.HIDDEN_DIM, normalize=True, temperature=10000)
    return enc.grid(feat_size, feat_size, torch.device(device))[None].clone()


def example_inputs(spec: GraphSpec, batch: int = 2, points: int = 3, seed: int = 0) -> tuple[Tensor, ...]:
    """Valid random inputs for ``spec`` (dynamic dims set to ``batch``/``points``).

    Tracing with a batch and point count above 1 keeps the exporter from specialising
    those axes. Values are in range for each input's meaning (labels in -1..3, time
    positions within the bank, at least one valid slot per object).
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = {contract.BATCH: batch, contract.POINTS: points}
    out = []
    for t in spec.inputs:
        shape = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in t.shape)
        if t.dtype == "bool":
            value = torch.rand(shape, generator=gen) > 0.3
            value[0] = True  # every object keeps a valid slot (a conditioning frame)
        elif t.name == "point_labels":
            value = torch.randint(-1, 4, shape, generator=gen, dtype=torch.int32)
        elif t.name == "point_coords":
            value = torch.rand(shape, generator=gen) * 1000
        elif t.name == "mem_t_pos":
            value = torch.randint(0, 7, shape, generator=gen, dtype=torch.int64)
        elif t.name == "ptr_t_diff":
            value = torch.randint(-15, 16, shape, generator=gen).float()
        elif t.name == "has_mask_input":
            value = (torch.arange(shape[0]) % 2).float()
        else:
            value = torch.randn(shape, generator=gen)
        out.append(value)
    return tuple(out)


def export_graph(model: Sam2Model, spec: GraphSpec, out_dir: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export one graph to ``out_dir / spec.file`` with the dynamo exporter, atomically.

    ``torch.export`` keeps every axis static except the contract's ``B``/``N`` (named so in
    the file), and traces tensor-level logic such as ``encode_memory``'s per-object
    ``from_points & binarize`` that the TorchScript exporter cannot. Weight-only subgraphs
    are then folded to constants with size limits large enough for the Hiera position
    embedding, whose bicubic resize would otherwise reach TensorRT, which has no cubic
    ``Resize``. The write is atomic: an interrupted export leaves no truncated graph.
    """
    try:
        import onnxscript.optimizer  # noqa: PLC0415 - optional extra (onnx), loaded only when used
    except ImportError as exc:
        raise ImportError(
            "the ONNX export uses torch's dynamo exporter, which needs onnxscript: "
            "`pip install onnxscript` (part of `pip install -e .[onnx]`)"
        ) from exc

    wrapper = WRAPPERS[spec.name](model).eval()
    args = example_inputs(spec)
    dynamic = {t.name: ({i: d for i, d in enumerate(t.shape) if isinstance(d, str)} or None) for t in spec.inputs}
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            wrapper,
            args,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
        onnxscript.optimizer.optimize(program.model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / spec.file
    with atomic_path(dest) as tmp:
        program.save(tmp, external_data=False)
    return dest


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's per-step console chatter and warnings (a progress bar runs above)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
