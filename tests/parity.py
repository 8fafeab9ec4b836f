"""Shared helpers for parity tests against Meta's ``sam2==1.1.0`` package.

Parity is shown on identical random weights: the official module is randomised with a
fixed seed, its state_dict is loaded *strictly* into ours, and outputs are compared.
Every measured maximum difference is recorded so the suite can print a per-module table
(see ``conftest.py``), which is what the release notes quote.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: (module, quantity) -> (max abs diff, max relative L2 diff, atol used)
RECORDED: dict[str, tuple[float, float, float]] = {}


def official():
    """Import the official package or skip (it is a test-only dependency)."""
    import pytest  # here, not at the top: the benchmarks build models on machines without pytest

    return pytest.importorskip("sam2", reason="official sam2==1.1.0 is needed for parity tests")


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Fill every parameter and persistent buffer with seeded noise.

    Norm weights are kept near one so activations stay in a realistic range; everything
    else is N(0, std). Deterministic for a given seed and module structure.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=gen) * std
        if name.endswith("weight") and tensor.ndim == 1:  # LayerNorm / LayerNorm2d scale
            noise = noise + 1.0
        tensor.copy_(noise.to(tensor.dtype))
    return module


def load_same_weights(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy the official weights into ours, strictly: key names and shapes must match."""
    result = ours.load_state_dict(theirs.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@dataclass
class Diff:
    max_abs: float
    rel_l2: float

    def within(self, atol: float, rel: float | None = None) -> bool:
        return self.max_abs <= atol and (rel is None or self.rel_l2 <= rel)


def diff(ours: torch.Tensor, theirs: torch.Tensor) -> Diff:
    """Max abs and relative L2 difference; shapes must match exactly."""
    assert ours.shape == theirs.shape, f"shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    a, b = ours.detach().double(), theirs.detach().double()
    max_abs = (a - b).abs().max().item() if a.numel() else 0.0
    rel = ((a - b).norm() / b.norm().clamp_min(1e-12)).item()
    return Diff(max_abs, rel)


def assert_parity(name: str, ours: torch.Tensor, theirs: torch.Tensor, atol: float) -> Diff:
    """Assert ``max|ours - theirs| <= atol`` and record the measurement under ``name``."""
    d = diff(ours, theirs)
    RECORDED[name] = (d.max_abs, d.rel_l2, atol)
    assert d.within(atol), f"{name}: max abs diff {d.max_abs:.3e} > atol {atol:.1e} (rel L2 {d.rel_l2:.3e})"
    return d


def assert_differs(name: str, ours: torch.Tensor, theirs: torch.Tensor, atol: float) -> Diff:
    """The negative control: a deliberately wrong variant must *fail* the same tolerance."""
    d = diff(ours, theirs)
    assert not d.within(atol), (
        f"{name}: a deliberately wrong variant passed the parity tolerance "
        f"(max abs diff {d.max_abs:.3e} <= {atol:.1e}); the test cannot fail"
    )
    return d
