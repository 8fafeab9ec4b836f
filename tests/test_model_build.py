"""Model construction and checkpoint loading: names, shapes, strictness, clear errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

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
    verify_checkpoint,
)
from sam2_ros.model.build import _expected_shapes, _shape_only_model
from tests.official_model import OFFICIAL_YAML
from tests.parity import official

LAYOUTS = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}


@pytest.mark.parametrize("size", list(LAYOUTS))
def test_sam21_state_dict_matches_official_checkpoint_layout(data_dir, size):
    """Every key and shape of Meta's real SAM 2.1 checkpoints (read from their headers)."""
    layout = json.loads((data_dir / "checkpoint-layouts" / f"sam2.1_hiera_{LAYOUTS[size]}.json").read_text())
    expected = {k: tuple(v) for k, v in layout.items()}
    ours = _expected_shapes(_shape_only_model(get_config(f"sam2.1_hiera_{size}")))
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


@pytest.mark.parametrize("size", list(LAYOUTS))
def test_sam20_state_dict_matches_official_package(size):
    """SAM 2.0 has no shipped layout here: compare with the official package's model."""
    official()
    import sam2.build_sam  # noqa: F401  (initialises hydra's config search path)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = compose(config_name=OFFICIAL_YAML[f"sam2_hiera_{size}"])
    OmegaConf.resolve(cfg)
    theirs = instantiate(cfg.model, _recursive_=True)  # Meta's Hiera cannot be built on "meta"
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert _expected_shapes(_shape_only_model(get_config(f"sam2_hiera_{size}"))) == expected


def test_model_names_and_aliases():
    assert canonical_name("sam2.1_hiera_base_plus") == "sam2.1_hiera_b+"
    assert canonical_name("sam2.1-hiera-tiny.pt") == "sam2.1_hiera_t"
    assert canonical_name("configs/sam2/sam2_hiera_l.yaml") == "sam2_hiera_l"
    assert checkpoint_filename("sam2.1_hiera_b+") == "sam2.1_hiera_base_plus.pt"
    with pytest.raises(KeyError, match="known models"):
        canonical_name("sam3_hiera_t")
    with pytest.raises(ValueError, match="multiple of 32"):
        get_config("sam2.1_hiera_t", image_size=1000)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny SAM 2.1 checkpoint in Meta's format ({"model": state_dict}) with random weights."""
    model = build_sam2("sam2.1_hiera_t", image_size=256)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model.state_dict()


def test_loads_meta_format_and_safetensors(tiny_checkpoint, tmp_path):
    path, state = tiny_checkpoint
    model = build_sam2("sam2.1_hiera_t", checkpoint=path, image_size=256)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    from safetensors.torch import save_file

    st = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    model2 = build_sam2("sam2.1_hiera_t", checkpoint=st, image_size=512)  # image size is weight-independent
    assert torch.equal(model2.obj_ptr_tpos_proj.weight, state["obj_ptr_tpos_proj.weight"])


def test_wrong_model_names_missing_unexpected_misshaped_and_suggests_fit(tiny_checkpoint):
    path, _ = tiny_checkpoint
    with pytest.raises(CheckpointError) as err:
        build_sam2("sam2_hiera_s", checkpoint=path)
    text = str(err.value)
    assert "missing keys (" in text and "image_encoder.trunk.blocks.12" in text  # small has more blocks
    assert "unexpected keys (1)" not in text
    assert "no_obj_embed_spatial" in text  # 2.1-only key is unexpected for a 2.0 model
    assert "this checkpoint fits model 'sam2.1_hiera_t'" in text
    with pytest.raises(CheckpointError, match="mis-shaped keys \\([1-9]"):
        build_sam2("sam2.1_hiera_b+", checkpoint=path)


def test_suggest_model_knows_all_released_layouts(tiny_checkpoint):
    _, state = tiny_checkpoint
    assert suggest_model(state) == "sam2.1_hiera_t"
    broken = dict(state)
    broken.pop("no_mem_embed")
    assert suggest_model(broken) is None


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path, tiny_checkpoint):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint[0].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        verify_checkpoint(truncated, "sam2.1_hiera_t")
    # weights_only=True refuses pickles that would run code on load.
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": _Exploit()}))
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        verify_checkpoint(evil, "sam2.1_hiera_t")
    not_sd = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_sd)
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        verify_checkpoint(not_sd, "sam2.1_hiera_t")
    with pytest.raises(FileNotFoundError, match="sam2-ros download"):
        build_sam2("sam2.1_hiera_t", checkpoint=tmp_path / "nope.pt")


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_load_checkpoint_is_strict_about_shapes(tiny_checkpoint, tmp_path):
    _, state = tiny_checkpoint
    bad = dict(state)
    bad["no_obj_ptr"] = torch.zeros(1, 128)
    path = tmp_path / "bad.pt"
    torch.save({"model": bad}, path)
    model = build_sam2("sam2.1_hiera_t", image_size=256)
    before = model.no_obj_ptr.clone()
    with pytest.raises(CheckpointError, match=r"no_obj_ptr \(1, 128\) != \(1, 256\)"):
        load_checkpoint(model, path)
    assert torch.equal(model.no_obj_ptr, before)  # nothing half-loaded


def test_runtime_imports_neither_torchvision_nor_hydra():
    code = (
        "import sys\n"
        "from sam2_ros.model import build_sam2\n"
        "import torch\n"
        "m = build_sam2('sam2.1_hiera_t', image_size=128)\n"
        "f = m.encode_image(torch.zeros(1, 3, 128, 128))\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'torchvision', 'hydra', 'omegaconf', 'sam2'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
