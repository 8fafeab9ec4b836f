"""Pytest configuration: shared-data location, slow marker, and the parity report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.parity import RECORDED

#: Real data lives beside the checkout (see ../shared/data/README.md); SAM2_ROS_DATA overrides.
DATA_DIR = Path(os.environ.get("SAM2_ROS_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared test data not found at {DATA_DIR}")
    return DATA_DIR


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    """Print every measured parity difference so CI logs carry the numbers."""
    if not RECORDED:
        return
    tr = terminalreporter
    tr.section("parity: measured differences vs sam2==1.1.0")
    tr.write_line(f"{'quantity':<58} {'max |diff|':>11} {'rel L2':>10} {'atol':>8}")
    for name in sorted(RECORDED):
        max_abs, rel, atol = RECORDED[name]
        tr.write_line(f"{name:<58} {max_abs:>11.3e} {rel:>10.3e} {atol:>8.0e}")
