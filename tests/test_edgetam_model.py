"""EdgeTAM model construction: Meta's checkpoint layout, names, strict loading, no timm/torchvision.

``tests/layouts/edgetam.json`` is the key -> shape layout of Meta's EdgeTAM model
(``configs/edgetam.yaml`` of ``edgetam-dimos==1.0.1``), generated from the reference with
``python -m tests.edgetam_reference``; ``test_parity_edgetam.py`` checks that it still equals
the reference model's. These tests need neither the reference nor real weights.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sam2_ros.model import (
    CheckpointError,
    build_sam2,
    canonical_name,
    checkpoint_filename,
    get_config,
    load_checkpoint,
    suggest_model,
)
from sam2_ros.model.build import _expected_shapes, _shape_only_model
from sam2_ros.model.repvit import RepViT

LAYOUT = Path(__file__).parent / "layouts" / "edgetam.json"


def test_state_dict_matches_meta_edgetam_layout():
    """Every key and shape of Meta's EdgeTAM model: 982 tensors, 13.9 M values."""
    expected = {k: tuple(v) for k, v in json.loads(LAYOUT.read_text()).items()}
    ours = _expected_shapes(_shape_only_model(get_config("edgetam")))
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}
    assert len(ours) == 982
    assert round(sum(math.prod(s) for s in ours.values()) / 1e6, 1) == 13.9
    # SAM 2.0-style heads: neither of SAM 2.1's additions.
    assert not any(k.startswith(("obj_ptr_tpos_proj", "no_obj_embed_spatial")) for k in ours)


def test_names_sizes_and_config():
    assert canonical_name("EdgeTAM") == canonical_name("edgetam.pt") == canonical_name("configs/edgetam.yaml")
    assert canonical_name("edgetam") == "edgetam"
    assert checkpoint_filename("edgetam") == "edgetam.pt"
    cfg = get_config("edgetam")
    assert (cfg.version, cfg.fill_hole_area, cfg.memory_attention_layers) == ("2", 8, 2)
    assert cfg.memory_tokens_per_frame == 512 and cfg.backbone_channel_list == (384, 192, 96, 48)
    assert get_config("edgetam", image_size=512).feat_size == 32
    with pytest.raises(ValueError, match="multiple of 256"):
        get_config("edgetam", image_size=320)


@pytest.fixture(scope="module")
def edgetam_checkpoint(tmp_path_factory):
    """A random-weight EdgeTAM checkpoint in Meta's format ({"model": state_dict})."""
    model = build_sam2("edgetam", image_size=256)
    path = tmp_path_factory.mktemp("ckpt") / "edgetam.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model.state_dict()


def test_loads_meta_format_at_any_size(edgetam_checkpoint):
    path, state = edgetam_checkpoint
    model = build_sam2("edgetam", checkpoint=path, image_size=512)  # weights do not depend on the size
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert suggest_model(state) == "edgetam"


def test_strict_loading_names_keys(edgetam_checkpoint, tmp_path):
    path, state = edgetam_checkpoint
    with pytest.raises(CheckpointError) as err:
        build_sam2("sam2_hiera_t", checkpoint=path)
    text = str(err.value)
    assert re.search(r"missing keys \(\d+\): image_encoder\.trunk\.blocks\.0\.", text)  # Hiera's
    assert re.search(r"unexpected keys \(\d+\): image_encoder\.trunk\.body\.", text)  # RepViT's
    assert "this checkpoint fits model 'edgetam'" in text

    bad = dict(state)
    bad.pop("spatial_perceiver.latents_2d")
    bad["spatial_perceiver.latents"] = torch.zeros(128, 64)
    bad["image_encoder.trunk.body.stages_4.blocks.0.se.fc1.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.pt"
    torch.save({"model": bad}, broken)
    model = build_sam2("edgetam", image_size=256)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, broken)
    text = str(err.value)
    assert "missing keys (1): spatial_perceiver.latents_2d" in text
    assert "unexpected keys (1): image_encoder.trunk.body.stages_4.blocks.0.se.fc1.weight" in text
    assert "spatial_perceiver.latents (128, 64) != (256, 64)" in text


def test_runtime_imports_neither_timm_nor_torchvision():
    code = (
        "import sys, torch\n"
        "from sam2_ros.model import build_sam2\n"
        "m = build_sam2('edgetam', image_size=256)\n"
        "f = m.encode_image(torch.zeros(1, 3, 256, 256))\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'timm', 'torchvision', 'hydra', 'sam2'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@torch.no_grad()
def test_repvit_fuse_is_equivalent():
    """Folding BatchNorms and merging token-mixer branches keeps the outputs (inference speed-up)."""
    torch.manual_seed(0)
    trunk = RepViT().eval()
    for name, t in trunk.state_dict().items():  # non-trivial BatchNorm statistics and affine terms
        if name.endswith("running_var"):
            t.uniform_(0.5, 1.5)
        elif t.is_floating_point() and t.ndim == 1:
            t.add_(0.1 * torch.randn_like(t))
    x = torch.randn(1, 3, 64, 64)
    before = trunk(x)
    trunk.fuse_()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
    for a, b in zip(trunk(x), before, strict=True):
        assert ((a - b).norm() / b.norm()).item() < 1e-5


@torch.no_grad()
def test_perceiver_batches_objects_independently():
    """Meta's perceiver fails for B > 1 (EdgeTAM#15); ours equals one call per object."""
    model = build_sam2("edgetam", image_size=256)
    torch.manual_seed(0)
    feats = torch.randn(3, 64, 16, 16)
    pos = model.memory_encoder.position_encoding(feats)
    latents, lpos = model.spatial_perceiver(feats, pos)
    assert latents.shape == lpos.shape == (3, 512, 64)
    for b in range(3):
        one, one_pos = model.spatial_perceiver(feats[b : b + 1], pos[b : b + 1])
        torch.testing.assert_close(latents[b : b + 1], one, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(lpos[b : b + 1], one_pos)
    assert torch.equal(lpos[:, :256], torch.zeros_like(lpos[:, :256]))  # global latents: no position
    torch.testing.assert_close(model.memory_pos_enc(), lpos[:1])
