"""Parity of the image encoder (Hiera trunk + FPN neck) with Meta's ``sam2==1.1.0``.

Both models are built from the ``image_encoder`` section of the official SAM 2.1 YAML
configs shipped inside the ``sam2`` package (the SAM 2.0 configs have an identical
section), so these tests also show that the configs construct our classes unchanged.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from sam2_ros.model.hiera import Hiera
from sam2_ros.model.image_encoder import FpnNeck, ImageEncoder
from sam2_ros.model.position_encoding import PositionEmbeddingSine
from tests.parity import assert_differs, assert_parity, load_same_weights, official, randomize_

CONFIGS = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}

#: fp32 tolerance. Our modules run the same kernels in the same order as Meta's, and the
#: measured difference is exactly 0. Outputs reach |x| ~ 40 on random weights, where one
#: fp32 ulp is ~4e-6; 1e-4 (~25 ulp) leaves room for a harmless change of summation order
#: (BLAS blocking, thread count, SDPA backend) while any real bug, including each negative
#: control below, is off by 1e-2 or more.
ATOL = 1e-4
SEED, STD = 0, 0.05


def encoder_config(name: str) -> dict:
    """The ``image_encoder`` section of the official SAM 2.1 config for ``name``."""
    official()
    text = (importlib.resources.files("sam2") / "configs" / "sam2.1" / f"sam2.1_hiera_{CONFIGS[name]}.yaml").read_text()
    return yaml.safe_load(text)["model"]["image_encoder"]


def _kwargs(section: dict) -> dict:
    return {k: v for k, v in section.items() if k != "_target_"}


def build(cfg: dict, hiera: type, neck: type, pos_enc: type, encoder: type) -> nn.Module:
    """Instantiate an image encoder from a config section with the given classes."""
    neck_kwargs = _kwargs(cfg["neck"])
    position_encoding = pos_enc(**_kwargs(neck_kwargs.pop("position_encoding")))
    return encoder(
        hiera(**_kwargs(cfg["trunk"])), neck(position_encoding=position_encoding, **neck_kwargs), scalp=cfg["scalp"]
    )


def build_ours(cfg: dict) -> ImageEncoder:
    return build(cfg, Hiera, FpnNeck, PositionEmbeddingSine, ImageEncoder)


def build_official(cfg: dict) -> nn.Module:
    official()
    from sam2.modeling.backbones.hieradet import Hiera as OfficialHiera
    from sam2.modeling.backbones.image_encoder import FpnNeck as OfficialFpnNeck
    from sam2.modeling.backbones.image_encoder import ImageEncoder as OfficialImageEncoder
    from sam2.modeling.position_encoding import PositionEmbeddingSine as OfficialPositionEmbeddingSine

    return build(cfg, OfficialHiera, OfficialFpnNeck, OfficialPositionEmbeddingSine, OfficialImageEncoder)


_PAIRS: dict[str, tuple[nn.Module, nn.Module]] = {}


@pytest.fixture(scope="module", autouse=True)
def _free_pairs():
    """Release the cached models (up to ~1 GB) when this file is done."""
    yield
    _PAIRS.clear()


def pair(name: str) -> tuple[ImageEncoder, nn.Module]:
    """(ours, official) in eval mode with identical seeded random weights; built once."""
    if name not in _PAIRS:
        cfg = encoder_config(name)
        theirs = randomize_(build_official(cfg), SEED, STD).eval()
        ours = build_ours(cfg).eval()
        load_same_weights(ours, theirs)
        _PAIRS[name] = (ours, theirs)
    return _PAIRS[name]


def size_label(size: int | tuple[int, int]) -> str:
    return str(size) if isinstance(size, int) else "x".join(map(str, size))


def image(size: int | tuple[int, int]) -> Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    torch.manual_seed(1234)
    return torch.randn(1, 3, h, w)


def flatten_outputs(out: dict) -> dict[str, Tensor]:
    """Every tensor of the encoder's output dict under a stable name."""
    flat = {"vision_features": out["vision_features"]}
    for key in ("backbone_fpn", "vision_pos_enc"):
        flat.update({f"{key}[{i}]": t for i, t in enumerate(out[key])})
    return flat


@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_names_and_shapes_match_official(name: str) -> None:
    cfg = encoder_config(name)
    theirs = build_official(cfg)
    with torch.device("meta"):  # names and shapes only; skips allocating and initialising
        ours = build_ours(cfg)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours_shapes == theirs_shapes
    assert ours.trunk.channel_list == theirs.trunk.channel_list


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("tiny", 1024),
        ("small", 512),
        ("small", 256),
        ("tiny", (256, 384)),  # non-square: catches any H/W mix-up in windowing or pos-embeds
        pytest.param("base_plus", 256, marks=pytest.mark.slow),  # ~15 s: building + randomising 80M params
    ],
    ids=lambda v: v if isinstance(v, str) else size_label(v),
)
def test_image_encoder_parity(name: str, size: int | tuple[int, int]) -> None:
    ours, theirs = pair(name)
    x = image(size)
    with torch.no_grad():
        got, want = flatten_outputs(ours(x)), flatten_outputs(theirs(x))
    assert got.keys() == want.keys() and len(got) == 7  # scalp=1: three FPN levels
    for key in want:
        assert_parity(f"image_encoder[{name}@{size_label(size)}].{key}", got[key], want[key], ATOL)


# --- negative controls: deliberately wrong variants must fail the same tolerance ---------

CONTROL_SIZE = 256  # small enough to be cheap; the grid is still padded (16 -> 28 at window 14)


@pytest.fixture(scope="module")
def tiny_reference() -> dict[str, Tensor]:
    _, theirs = pair("tiny")
    with torch.no_grad():
        return flatten_outputs(theirs(image(CONTROL_SIZE)))


def _bilinear_pos_embed(trunk: Hiera) -> Callable[[tuple[int, int]], Tensor]:
    """The pos-embed with bilinear instead of bicubic interpolation (a plausible bug)."""

    def wrong(hw: tuple[int, int]) -> Tensor:
        h, w = hw
        wh, ww = trunk.pos_embed_window.shape[-2:]
        pos = F.interpolate(trunk.pos_embed, size=(h, w), mode="bilinear")
        return (pos + trunk.pos_embed_window.tile(1, 1, h // wh, w // ww)).permute(0, 2, 3, 1)

    return wrong


@pytest.mark.parametrize("variant", ["bilinear_pos_embed", "window_size_16", "bilinear_top_down"])
def test_negative_control_wrong_variant_fails(variant: str, tiny_reference, monkeypatch) -> None:
    ours, _ = pair("tiny")
    if variant == "bilinear_pos_embed":
        monkeypatch.setattr(ours.trunk, "_get_pos_embed", _bilinear_pos_embed(ours.trunk))
        key = "backbone_fpn[0]"
    elif variant == "window_size_16":
        monkeypatch.setattr(ours.trunk.blocks[0], "window_size", 16)  # stage-1 window is 8
        key = "backbone_fpn[0]"
    else:  # the neck's top-down path only feeds the lowest kept level
        monkeypatch.setattr(ours.neck, "fpn_interp_model", "bilinear")
        key = "vision_features"
    with torch.no_grad():
        got = flatten_outputs(ours(image(CONTROL_SIZE)))
    assert_differs(f"control[{variant}].{key}", got[key], tiny_reference[key], ATOL)


def test_negative_control_layout_errors_fail(tiny_reference) -> None:
    ours, _ = pair("tiny")
    with torch.no_grad():
        got = flatten_outputs(ours(image(CONTROL_SIZE)))
    # H <-> W transposed maps (a permute bug) have the right shape but wrong values.
    for key in ("backbone_fpn[1]", "vision_pos_enc[2]"):
        assert_differs(f"control[transposed].{key}", got[key].transpose(-1, -2), tiny_reference[key], ATOL)
    # Swapped FPN levels cannot even be compared: the parity check rejects the shape.
    with pytest.raises(AssertionError, match="shape"):
        assert_parity("control[swapped]", got["backbone_fpn[1]"], tiny_reference["backbone_fpn[0]"], ATOL)
