"""Parity of our prompt encoder + mask decoder with Meta's ``sam2==1.1.0``.

Both are built with the SAM 2.1 settings that ``SAM2Base._build_sam_heads`` uses (plus the
``dynamic_multimask_via_stability`` overrides that ``build_sam2*`` add by default), filled
with the same random weights, and run on the same random prompts and image features.

Tolerances (fp32). Our modules run the same fp32 operations in the same order as Meta's,
so the measured differences are expected to be exactly zero; the tolerances only leave
headroom for kernel-level reordering (BLAS/SDPA blocking can differ with thread count or
batch shape), which is ~1e-7 relative. They are set far below anything a real bug produces
(the negative controls below differ by 2.5e-2 to 8.8):

* ``ATOL`` = 1e-5 for O(1) quantities: prompt tokens, dense embeddings, PE, IoU, output
  tokens, object-score logits.
* ``ATOL_MASK`` = 1e-4 for mask logits: |logit| reaches ~10 and each logit is a 32-wide dot
  product over features that went through two transformer blocks and two transposed convs.
"""

from __future__ import annotations

import copy
import zlib
from functools import cache

import pytest
import torch

from sam2_ros.model.mask_decoder import MaskDecoder, dynamic_single_mask, stability_scores
from sam2_ros.model.prompt_encoder import PromptEncoder
from sam2_ros.model.transformer import TwoWayTransformer
from tests.parity import assert_differs, assert_parity, load_same_weights, official, randomize_

ATOL = 1e-5
ATOL_MASK = 1e-4
EMBED_DIM = 256
NUM_OBJECTS = 3  # prompt batch: several objects on one image

#: SAM 2.1 ``_build_sam_heads`` arguments (sam2.1_hiera_*.yaml + build_sam2 post-processing).
SAM21_DECODER_KW = dict(
    num_multimask_outputs=3,
    transformer_dim=EMBED_DIM,
    iou_head_depth=3,
    iou_head_hidden_dim=256,
    use_high_res_features=True,
    iou_prediction_use_sigmoid=True,
    pred_obj_scores=True,
    pred_obj_scores_mlp=True,
    use_multimask_token_for_obj_ptr=True,
    dynamic_multimask_via_stability=True,
    dynamic_multimask_stability_delta=0.05,
    dynamic_multimask_stability_thresh=0.98,
)
TRANSFORMER_KW = dict(depth=2, embedding_dim=EMBED_DIM, mlp_dim=2048, num_heads=8)
#: embedding size -> input image size (backbone stride 16): the release size and a reduced one.
SIZES = {64: 1024, 32: 512}


@pytest.fixture(autouse=True)
def _no_grad():
    """Inference only; scoped per test so other modules' autograd state is untouched."""
    with torch.no_grad():
        yield


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


@cache
def heads(emb: int, variant: str = "sam2.1") -> tuple:
    """(official PE, official decoder, our PE, our decoder) with identical random weights.

    ``variant``: "sam2.1"; "sharp" (SAM 2.1 with the single-mask hypernetwork scaled x50 so
    token 0's mask is stable and the dynamic fallback is *not* taken); "plain" and
    "obj_linear" (other constructor branches: Meta's defaults, and a Linear object-score head).
    """
    official()  # skip cleanly without the reference package
    from sam2.modeling.sam.mask_decoder import MaskDecoder as TheirDecoder
    from sam2.modeling.sam.prompt_encoder import PromptEncoder as TheirPE
    from sam2.modeling.sam.transformer import TwoWayTransformer as TheirTransformer

    kw = dict(SAM21_DECODER_KW)
    if variant == "plain":
        kw = dict(num_multimask_outputs=3, transformer_dim=EMBED_DIM)
    elif variant == "obj_linear":
        kw.update(pred_obj_scores_mlp=False, use_high_res_features=False, use_multimask_token_for_obj_ptr=False)
    pe_args = (EMBED_DIM, (emb, emb), (SIZES[emb], SIZES[emb]), 16)

    their_pe = randomize_(TheirPE(*pe_args), seed=_seed("pe", emb)).eval()
    their_dec = randomize_(
        TheirDecoder(transformer=TheirTransformer(**TRANSFORMER_KW), **kw), seed=_seed("dec", emb)
    ).eval()
    # The Fourier-feature matrix is N(0, 1) in Meta's init (and in checkpoints); randomize_'s
    # N(0, 0.05) would make the positional encoding nearly constant over the image.
    their_pe.pe_layer.positional_encoding_gaussian_matrix.div_(0.05)
    if variant == "sharp":
        last = their_dec.output_hypernetworks_mlps[0].layers[-1]
        last.weight.mul_(50.0)
        last.bias.mul_(50.0)

    our_pe = PromptEncoder(*pe_args).eval()
    our_dec = MaskDecoder(transformer=TwoWayTransformer(**TRANSFORMER_KW), **kw).eval()
    load_same_weights(our_pe, their_pe)
    load_same_weights(our_dec, their_dec)
    return their_pe, their_dec, our_pe, our_dec


def make_prompts(case: str, emb: int, batch: int, gen: torch.Generator) -> tuple:
    """(points, boxes, masks) for a named prompt combination, in input-image pixels."""
    size = SIZES[emb]
    points = boxes = masks = None
    if "points" in case:
        coords = torch.rand(batch, 3, 2, generator=gen) * size
        # positive, negative, and (for one object) an explicit padding point
        labels = torch.tensor([[1, 0, 1]] * batch)
        labels[-1, -1] = -1
        points = (coords, labels)
    if "box" in case:
        xy0 = torch.rand(batch, 2, generator=gen) * size / 2
        boxes = torch.cat([xy0, xy0 + torch.rand(batch, 2, generator=gen) * size / 2], dim=1)
    if "mask" in case:
        masks = torch.randn(batch, 1, 4 * emb, 4 * emb, generator=gen) * 5
    return points, boxes, masks


def image_inputs(emb: int, image_batch: int, gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Image embedding and (already projected) stride-4/stride-8 high-res features."""
    image = torch.randn(image_batch, EMBED_DIM, emb, emb, generator=gen)
    feat_s0 = torch.randn(image_batch, EMBED_DIM // 8, 4 * emb, 4 * emb, generator=gen)
    feat_s1 = torch.randn(image_batch, EMBED_DIM // 4, 2 * emb, 2 * emb, generator=gen)
    return image, [feat_s0, feat_s1]


# --------------------------------------------------------------------------- prompt encoder

PROMPT_CASES = ["points", "box", "box+points", "mask", "points+mask", "box+points+mask", "none"]


@pytest.mark.parametrize("emb", list(SIZES))
@pytest.mark.parametrize("case", PROMPT_CASES)
def test_prompt_encoder(emb: int, case: str) -> None:
    their_pe, _, our_pe, _ = heads(emb)
    gen = torch.Generator().manual_seed(_seed(case, emb))
    batch = 1 if case == "none" else NUM_OBJECTS
    prompts = make_prompts(case, emb, batch, gen)
    sparse, dense = our_pe(*prompts)
    their_sparse, their_dense = their_pe(*prompts)
    assert_parity(f"prompt_encoder[{emb},{case}].sparse", sparse, their_sparse, ATOL)
    assert_parity(f"prompt_encoder[{emb},{case}].dense", dense, their_dense, ATOL)


@pytest.mark.parametrize("emb", list(SIZES))
def test_dense_pe(emb: int) -> None:
    their_pe, _, our_pe, _ = heads(emb)
    assert_parity(f"prompt_encoder[{emb}].dense_pe", our_pe.get_dense_pe(), their_pe.get_dense_pe(), ATOL)


def test_prompt_encoder_negative_controls() -> None:
    """Swapped positive/negative embeddings and a missing +0.5 pixel shift must both fail."""
    their_pe, _, our_pe, _ = heads(64)
    gen = torch.Generator().manual_seed(_seed("neg-pe"))
    points, _, _ = make_prompts("points", 64, NUM_OBJECTS, gen)
    their_sparse, _ = their_pe(points, None, None)

    swapped = copy.deepcopy(our_pe)
    neg, pos = swapped.point_embeddings[0].weight, swapped.point_embeddings[1].weight
    neg.data, pos.data = pos.data.clone(), neg.data.clone()
    assert_differs("prompt_encoder[swapped pos/neg labels]", swapped(points, None, None)[0], their_sparse, ATOL)

    coords, labels = points
    no_shift, _ = our_pe((coords - 0.5, labels), None, None)  # == encoding without the +0.5
    assert_differs("prompt_encoder[no +0.5 shift]", no_shift, their_sparse, ATOL)


# --------------------------------------------------------------------------- mask decoder

# (embedding size, prompts, multimask_output, repeat_image)
DECODER_CASES = [
    (64, "points", True, True),
    (64, "points", False, True),
    (64, "box+points", False, False),
    (64, "points+mask", False, True),
    (32, "box+points", True, True),
    (32, "box", True, True),
    (32, "mask", False, False),
    (32, "points", False, False),
    (32, "none", True, True),
    (32, "none", False, True),
]


def run_both(emb: int, case: str, multimask: bool, repeat_image: bool, variant: str = "sam2.1") -> tuple:
    """End to end (prompt encoder -> decoder) through both implementations."""
    their_pe, their_dec, our_pe, our_dec = heads(emb, variant)
    gen = torch.Generator().manual_seed(_seed(emb, case, multimask, repeat_image, variant))
    batch = 1 if case == "none" else NUM_OBJECTS
    prompts = make_prompts(case, emb, batch, gen)
    image, high_res = image_inputs(emb, 1 if repeat_image else batch, gen)
    if not our_dec.use_high_res_features:
        high_res = None

    def decode(pe, dec):
        sparse, dense = pe(*prompts)
        args = (image, pe.get_dense_pe(), sparse, dense)
        out = dec(*args, multimask_output=multimask, repeat_image=repeat_image, high_res_features=high_res)
        return out, args

    ours, our_args = decode(our_pe, our_dec)
    theirs, their_args = decode(their_pe, their_dec)
    return ours, theirs, our_args, their_args, high_res


def check_outputs(prefix: str, ours: tuple, theirs: tuple) -> None:
    names = ("masks", "iou_pred", "sam_tokens_out", "object_score_logits")
    for name, a, b in zip(names, ours, theirs):
        assert_parity(f"{prefix}.{name}", a, b, ATOL_MASK if name == "masks" else ATOL)


def _case_id(case: tuple) -> str:
    emb, prompts, multimask, repeat = case
    return f"{emb}-{prompts}-{'multi' if multimask else 'single'}-{'repeat' if repeat else 'perimage'}"


@pytest.mark.parametrize("case", DECODER_CASES, ids=_case_id)
def test_mask_decoder(case: tuple) -> None:
    emb, prompts, multimask, repeat_image = case
    ours, theirs, our_args, _, _ = run_both(emb, prompts, multimask, repeat_image)
    tag = (
        f"mask_decoder[{emb},{prompts},{'multimask' if multimask else 'single'}{'' if repeat_image else ',per-image'}]"
    )
    check_outputs(tag, ours, theirs)
    n_out = 3 if multimask else 1
    assert ours[0].shape == (our_args[2].shape[0], n_out, 4 * emb, 4 * emb)
    assert ours[2].shape[1] == n_out  # use_multimask_token_for_obj_ptr


@pytest.mark.parametrize("emb", list(SIZES))
def test_predict_masks_and_select(emb: int) -> None:
    """All four masks/IoUs/tokens match Meta's ``predict_masks``, and our ``predict_masks`` +
    ``select`` (the split the ONNX export uses) reproduces Meta's ``forward`` exactly."""
    their_pe, their_dec, _, our_dec = heads(emb)
    gen = torch.Generator().manual_seed(_seed("predict", emb))
    prompts = make_prompts("box+points", emb, NUM_OBJECTS, gen)
    image, high_res = image_inputs(emb, 1, gen)
    sparse, dense = their_pe(*prompts)
    args = (image, their_pe.get_dense_pe(), sparse, dense)
    kw = dict(repeat_image=True, high_res_features=high_res)
    theirs = their_dec.predict_masks(*args, **kw)
    ours = our_dec.predict_masks(*args, **kw)
    names = ("masks", "iou_pred", "mask_tokens_out", "object_score_logits")
    for name, a, b in zip(names, ours, theirs):
        assert_parity(f"mask_decoder[{emb},predict_masks].{name}", a, b, ATOL_MASK if name == "masks" else ATOL)
    assert ours[0].shape[1] == ours[1].shape[1] == ours[2].shape[1] == 4

    for multimask in (False, True):
        selected = (*our_dec.select(*ours[:3], multimask_output=multimask), ours[3])
        tag = f"mask_decoder[{emb},predict_masks+select,{'multimask' if multimask else 'single'}]"
        check_outputs(tag, selected, their_dec(*args, multimask_output=multimask, **kw))


def test_mask_decoder_stable_single_mask() -> None:
    """The other side of the dynamic fallback: token 0 stable, so it is returned as is."""
    ours, theirs, _, their_args, high_res = run_both(32, "points", False, True, variant="sharp")
    _, their_dec, _, _ = heads(32, "sharp")
    all_masks = their_dec.predict_masks(*their_args, repeat_image=True, high_res_features=high_res)[0]
    assert (their_dec._get_stability_scores(all_masks[:, 0:1]) >= 0.98).all(), "fixture no longer stable"
    check_outputs("mask_decoder[32,points,single,stable]", ours, theirs)


@pytest.mark.parametrize("variant", ["plain", "obj_linear"])
def test_mask_decoder_other_configs(variant: str) -> None:
    """Constructor branches SAM 2.1 does not use: no high-res / obj-score head, Linear obj head."""
    for multimask in (False, True):
        ours, theirs, _, _, _ = run_both(32, "box+points", multimask, True, variant=variant)
        check_outputs(f"mask_decoder[32,box+points,{'multimask' if multimask else 'single'},{variant}]", ours, theirs)


def test_selection_matches_official() -> None:
    """Selection on crafted decoder outputs: stable, unstable and empty single masks mixed
    in one batch, multimask on/off, eval (dynamic fallback) and train (no fallback)."""
    _, their_dec, _, our_dec = heads(32)
    gen = torch.Generator().manual_seed(_seed("select"))
    masks = torch.randn(5, 4, 16, 16, generator=gen)
    masks[0, 0] *= 100.0  # stable: few pixels within +-0.05
    masks[1, 0] *= 0.01  # unstable: everything within +-0.05
    masks[2, 0] = -1.0  # empty: stability defined as 1
    ious = torch.rand(5, 4, generator=gen)
    tokens = torch.randn(5, 4, EMBED_DIM, generator=gen)
    scores = stability_scores(masks[:, 0:1], 0.05)
    assert scores[0] >= 0.98 and scores[1] < 0.98 and scores[2] == 1.0
    assert_parity("selection.stability_scores", scores, their_dec._get_stability_scores(masks[:, 0:1]), 0.0)

    dyn = dynamic_single_mask(masks, ious, 0.05, 0.98)
    their_dyn = their_dec._dynamic_multimask_via_stability(masks, ious)
    for a, b in zip(dyn, their_dyn):
        assert torch.equal(a, b)

    fake_obj = torch.zeros(5, 1)
    original_predict = their_dec.predict_masks
    try:
        their_dec.predict_masks = lambda **_: (masks, ious, tokens, fake_obj)
        for training in (False, True):
            their_dec.train(training)
            our_dec.train(training)
            for multimask in (False, True):
                theirs = their_dec(None, None, None, None, multimask_output=multimask, repeat_image=True)
                ours = our_dec.select(masks, ious, tokens, multimask_output=multimask)
                for a, b in zip(ours, theirs[:3]):
                    assert torch.equal(a, b)
    finally:
        del their_dec.predict_masks
        assert their_dec.predict_masks == original_predict
        their_dec.eval()
        our_dec.eval()


def test_mask_decoder_negative_controls() -> None:
    """A wrong multimask slice, or skipping the stability fallback, must fail the tolerance."""
    their_pe, their_dec, _, our_dec = heads(64)
    gen = torch.Generator().manual_seed(_seed("neg-dec"))
    prompts = make_prompts("points", 64, NUM_OBJECTS, gen)
    image, high_res = image_inputs(64, 1, gen)
    sparse, dense = their_pe(*prompts)
    args = (image, their_pe.get_dense_pe(), sparse, dense)
    kw = dict(repeat_image=True, high_res_features=high_res)
    all_masks = our_dec.predict_masks(*args, **kw)[0]
    their_multi = their_dec(*args, multimask_output=True, **kw)[0]
    their_single = their_dec(*args, multimask_output=False, **kw)[0]
    assert (stability_scores(all_masks[:, 0:1], 0.05) < 0.98).any(), "fixture no longer exercises the fallback"

    assert_differs("mask_decoder[wrong multimask slice :3]", all_masks[:, :3], their_multi, ATOL_MASK)
    assert_differs("mask_decoder[no stability fallback]", all_masks[:, 0:1], their_single, ATOL_MASK)
