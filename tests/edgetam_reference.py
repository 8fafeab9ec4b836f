"""Meta's EdgeTAM as a parity reference, run in its own process (test-only).

Meta's EdgeTAM code (``edgetam-dimos==1.0.1``) installs a module named ``sam2`` that collides
with ``sam2==1.1.0`` (the SAM 2.1 reference), and its RepViT backbone comes from ``timm``, which
imports ``torchvision`` (not installable beside the CPU torch). ``scripts/setup.sh`` therefore
installs both with ``--no-deps --target .cache/edgetam_ref``, and the reference runs only in a
subprocess (:mod:`tests.edgetam_reference_worker`) with that folder first on ``sys.path`` and a
torchvision stand-in. Tensors and state_dicts cross through temporary files
(``torch.save`` / ``torch.load(weights_only=True)``).

Usage from tests::

    ref = reference_state_dict(seed=0, image_size=256)            # Meta's layout, random weights
    out = run_reference("image_encoder", seed=0, image_size=256, images=x)

Batches of calls share one subprocess (:func:`run_reference_batch`), and
:func:`reference_state_dict` is cached for the test session. Reference functions live in the
worker (``state_dict``, ``image_encoder``, ``perceiver``, ``memory_attention``,
``memory_encoder``); another test file can add its own by passing ``extra=[path]``: that file is
executed inside the reference process and registers functions with
``tests.edgetam_reference_worker.reference_function`` (and may use ``build_reference_model``).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = Path(os.environ.get("EDGETAM_REF_DIR", ROOT / ".cache" / "edgetam_ref"))
WORKER_BOOT = "import tests.edgetam_reference_worker as w; w.main()"


def reference_available() -> bool:
    """Whether ``scripts/setup.sh`` installed Meta's EdgeTAM and timm into ``.cache/edgetam_ref``."""
    return (REF_DIR / "sam2" / "configs" / "edgetam.yaml").is_file() and (REF_DIR / "timm").is_dir()


def require_reference() -> None:
    """Skip the calling test when the reference is not installed."""
    import pytest

    if not reference_available():
        pytest.skip(f"EdgeTAM reference not installed in {REF_DIR}; run scripts/setup.sh")


class ReferenceError(RuntimeError):
    """The reference subprocess failed (its stderr is in the message)."""


def run_reference_batch(
    calls: Sequence[tuple[str, dict]], extra: Sequence[str | os.PathLike] = (), timeout: float = 1800
) -> list[dict]:
    """Run ``[(fn_name, kwargs), ...]`` in one reference subprocess; returns their result dicts."""
    require_reference()
    with tempfile.TemporaryDirectory(prefix="edgetam_ref_") as tmp:
        request, result = Path(tmp) / "request.pt", Path(tmp) / "result.pt"
        torch.save({"calls": [(name, dict(kwargs)) for name, kwargs in calls]}, request)
        env = dict(os.environ, PYTHONPATH=str(ROOT), EDGETAM_REF_DIR=str(REF_DIR))
        cmd = [sys.executable, "-c", WORKER_BOOT, str(request), str(result), *map(str, extra)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ReferenceError(f"EdgeTAM reference failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
        return torch.load(result, weights_only=True)["results"]


def run_reference(fn_name: str, extra: Sequence[str | os.PathLike] = (), **kwargs) -> dict:
    """Run one reference function in a fresh subprocess."""
    return run_reference_batch([(fn_name, kwargs)], extra=extra)[0]


@functools.lru_cache(maxsize=4)
def _cached_state(seed: int, image_size: int) -> dict:
    return run_reference("state_dict", seed=seed, image_size=image_size)


def reference_state_dict(seed: int = 0, image_size: int = 256) -> dict[str, torch.Tensor]:
    """Meta's EdgeTAM state_dict with seeded random weights (cached per test session; copy to modify)."""
    return _cached_state(seed, image_size)["state_dict"]


def reference_layout(seed: int = 0, image_size: int = 1024) -> dict[str, list[int]]:
    """Key -> shape of the reference model (what ``tests/layouts/edgetam.json`` records)."""
    return {k: list(v.shape) for k, v in reference_state_dict(seed, image_size).items()}


if __name__ == "__main__":  # regenerate the stored layout: python -m tests.edgetam_reference
    import json

    out = ROOT / "tests" / "layouts" / "edgetam.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(reference_layout(), indent=0) + "\n")
    print(f"wrote {out}")
