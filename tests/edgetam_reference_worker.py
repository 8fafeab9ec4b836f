"""Reference side of the EdgeTAM parity harness: runs INSIDE the reference subprocess only.

Never import this from a test process: it puts Meta's EdgeTAM code (module ``sam2``, installed
by ``scripts/setup.sh`` into ``.cache/edgetam_ref``) first on ``sys.path`` and installs the
torchvision stand-in, both of which would shadow ``sam2==1.1.0`` and break the test process.
:mod:`tests.edgetam_reference` starts it as::

    python -c "import tests.edgetam_reference_worker as w; w.main()" REQUEST.pt RESULT.pt [EXTRA.py ...]

``REQUEST.pt`` (``torch.save``) holds ``{"calls": [(fn_name, kwargs), ...]}``; the worker runs
each registered function and writes ``{"results": [...]}`` to ``RESULT.pt``; both sides load with
``weights_only=True``, so only tensors, numbers, strings, lists, tuples and dicts cross.

Other test files add reference functions by passing their own file as ``EXTRA.py``: it is
executed here after the bootstrap and registers functions with :func:`reference_function`
(e.g. the video-predictor runner). :func:`build_reference_model` gives them the randomised
reference model for a (seed, image size), cached per process.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = Path(os.environ.get("EDGETAM_REF_DIR", ROOT / ".cache" / "edgetam_ref"))

_FUNCTIONS: dict[str, Callable] = {}
_MODELS: dict[tuple, object] = {}


def reference_function(fn: Callable) -> Callable:
    """Register ``fn`` under its name as callable through ``run_reference``."""
    _FUNCTIONS[fn.__name__] = fn
    return fn


def bootstrap() -> None:
    """Meta's EdgeTAM first on sys.path, the torchvision stand-in, and no network for timm."""
    if not (REF_DIR / "sam2" / "configs" / "edgetam.yaml").is_file():
        raise SystemExit(f"EdgeTAM reference not installed in {REF_DIR} (run scripts/setup.sh)")
    sys.path.insert(0, str(REF_DIR))
    for name in [m for m in sys.modules if m == "sam2" or m.startswith("sam2.")]:
        del sys.modules[name]
    from tests.torchvision_standin import install_reference_torchvision

    install_reference_torchvision()
    import sam2  # noqa: F401 - EdgeTAM's package (initialises hydra's config module)
    import sam2.modeling.backbones.timm as timm_backbone

    assert Path(sam2.__file__).resolve().is_relative_to(REF_DIR.resolve()), sam2.__file__
    create_model = timm_backbone.create_model

    def offline_create_model(*args, **kwargs):
        # EdgeTAM asks timm for ImageNet weights (pretrained=True): a download. Parity runs on
        # random weights, so the backbone is built without them.
        kwargs["pretrained"] = False
        return create_model(*args, **kwargs)

    timm_backbone.create_model = offline_create_model


# ----------------------------------------------------------------------------- model
def hydra_overrides(image_size: int) -> list[str]:
    """Overrides for a reduced input size: the cross-attention query RoPE grid is fixed at build."""
    side = image_size // 16
    return [
        f"++model.image_size={image_size}",
        f"++model.memory_attention.layer.cross_attention.q_sizes=[{side},{side}]",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
    ]


@torch.no_grad()
def randomize(model, seed: int) -> None:
    """Seeded default init plus noise on every float tensor (biases, norms, BN stats included).

    Default init keeps activations in a realistic range through the 20 RepViT stages; the added
    noise makes biases, norm affine parameters and BatchNorm statistics non-trivial so parity
    covers them. BatchNorm running variances stay positive.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        elif name.endswith("running_mean"):
            t.copy_(0.1 * torch.randn(t.shape, generator=gen))
        else:
            t.add_(0.02 * torch.randn(t.shape, generator=gen))


def build_reference_model(seed: int, image_size: int, video: bool = False):
    """Meta's EdgeTAM (``configs/edgetam.yaml``) with seeded random weights, eval mode, cached.

    ``video=True`` builds ``SAM2VideoPredictor`` with the builder's video overrides (as
    ``build_sam2_video_predictor``; it forces ``fill_hole_area=8``); the weights are the same
    for the same seed and size.
    """
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    key = (seed, image_size, video)
    if key not in _MODELS:
        overrides = hydra_overrides(image_size) + [
            "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
            "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
            "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
        ]
        if video:
            overrides += [
                "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
                "++model.binarize_mask_from_pts_for_mem_enc=true",
                "++model.fill_hole_area=8",
            ]
        cfg = compose(config_name="configs/edgetam.yaml", overrides=overrides)
        OmegaConf.resolve(cfg)
        torch.manual_seed(seed)
        model = instantiate(cfg.model, _recursive_=True)
        randomize(model, seed)
        if video and (seed, image_size, False) in _MODELS:  # identical weights either way
            model.load_state_dict(_MODELS[(seed, image_size, False)].state_dict())
        _MODELS[key] = model.eval()
    return _MODELS[key]


# ----------------------------------------------------------------------- functions
@reference_function
def state_dict(seed: int, image_size: int) -> dict:
    """The randomised reference state_dict (Meta's checkpoint layout) and its build facts."""
    model = build_reference_model(seed, image_size)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trunk = model.image_encoder.trunk
    return {"state_dict": sd, "channel_list": list(trunk.channel_list)}


@reference_function
def image_encoder(seed: int, image_size: int, images) -> dict:
    """Trunk outputs per level (stride 4..32) and the encoder's FPN levels + position encodings."""
    model = build_reference_model(seed, image_size)
    with torch.no_grad():
        trunk = model.image_encoder.trunk(images)
        out = model.image_encoder(images)
    return {
        "trunk": [t.clone() for t in trunk],
        "backbone_fpn": [t.clone() for t in out["backbone_fpn"]],
        "vision_pos_enc": [t.clone() for t in out["vision_pos_enc"]],
        "vision_features": out["vision_features"].clone(),
    }


@reference_function
def perceiver(seed: int, image_size: int, feats, pos) -> dict:
    """``spatial_perceiver`` on memory features (one object at a time: Meta's view() fails for B > 1)."""
    model = build_reference_model(seed, image_size)
    lat, lpos = [], []
    with torch.no_grad():
        for b in range(feats.shape[0]):
            latents, latents_pos = model.spatial_perceiver(feats[b : b + 1], pos[b : b + 1])
            lat.append(latents)
            lpos.append(latents_pos)
    return {"latents": torch.cat(lat), "pos": torch.cat(lpos)}


@reference_function
def memory_attention(
    seed: int, image_size: int, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens: int, num_spatial_mem: int
) -> dict:
    """``memory_attention`` (sequence-first tensors, as ``SAM2Base`` calls it)."""
    model = build_reference_model(seed, image_size)
    with torch.no_grad():
        out = model.memory_attention(
            curr=[curr],
            curr_pos=[curr_pos],
            memory=memory,
            memory_pos=memory_pos,
            num_obj_ptr_tokens=num_obj_ptr_tokens,
            num_spatial_mem=num_spatial_mem,
        )
    return {"out": out.clone()}


@reference_function
def memory_encoder(seed: int, image_size: int, pix_feat, masks) -> dict:
    """``memory_encoder`` then ``spatial_perceiver``, as ``SAM2Base._encode_new_memory`` ends."""
    model = build_reference_model(seed, image_size)
    with torch.no_grad():
        out = model.memory_encoder(pix_feat, masks, skip_mask_sigmoid=True)
        feats, pos = out["vision_features"], out["vision_pos_enc"][0]
    return {"features": feats.clone(), "pos": pos.clone()}


def _load_extra(path: str) -> None:
    spec = importlib.util.spec_from_file_location(f"edgetam_extra_{len(_FUNCTIONS)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def main() -> None:
    request_path, result_path, *extras = sys.argv[1:]
    torch.set_num_threads(int(os.environ.get("EDGETAM_REF_THREADS", "0")) or torch.get_num_threads())
    bootstrap()
    for extra in extras:
        _load_extra(extra)
    request = torch.load(request_path, weights_only=True)
    results = []
    for fn_name, kwargs in request["calls"]:
        if fn_name not in _FUNCTIONS:
            raise SystemExit(f"unknown reference function {fn_name!r}; known: {sorted(_FUNCTIONS)}")
        results.append(_FUNCTIONS[fn_name](**kwargs))
    torch.save({"results": results}, result_path)


if __name__ == "__main__":
    main()
