"""The one-call GPU script (benchmarks/gpu_run.py) in its CPU configuration.

A GPU session gets minutes of device time; this runs the same script end to end on the CPU
(64 px, 2 objects, a few synthetic frames) so it is known to work before a GPU is lent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_run_tiny_on_cpu_writes_parity_and_benchmarks(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_run.py"),
            str(tmp_path),
            "--device",
            "cpu",
            "--tiny",
            "--budget-s",
            "900",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_run.json").read_text())
    assert report["all_parts_ran"] and report["parity_passed"] is True
    assert report["environment"]["torch"] == torch.__version__

    parts = report["parts"]
    checks = parts["parity"]["result"]["checks"]
    # On the CPU "the device" is the CPU: float32 must agree exactly, ours with Meta's within parity bounds.
    assert checks["ours_fp32_device_vs_cpu"]["max_rel_l2"] == 0.0
    assert checks["ours_vs_official_fp32_device"]["max_rel_l2"] <= 5e-3
    assert checks["ours_vs_official_fp32_device"]["min_iou"] >= 0.99
    assert checks["ours_bfloat16_vs_fp32"]["passed"] and checks["ours_bfloat16_vs_fp32"]["frames"] == 3
    assert "skipped" in checks["ours_float16_vs_fp32"]
    assert "ours_edgetam_fp32_device_vs_cpu" not in checks  # --tiny: EdgeTAM only in the benchmarks

    for name in ("bench_fp32", "bench_bf16"):
        rows = parts[name]["result"]["rows"]
        assert [r["objects"] for r in rows] == [1, 2]
        for r in rows:
            assert r["official_ms"] > 0 and r["ours_ms"] > 0 and len(r["ours_frames_ms"]) == 2
            assert set(r["ours_stages_ms"]) == {
                "preprocess",
                "image_encoder",
                "memory_attention",
                "mask_decoder",
                "memory_encoder",
                "postprocess",
                "full_res_outputs",
            }
            assert 0 < r["ratio_without_preprocess"] <= r["ratio_ours_over_official"]
            assert r["edgetam_ms"] > 0 and len(r["edgetam_frames_ms"]) == 2
            assert r["ratio_edgetam_over_official"] == pytest.approx(r["edgetam_ms"] / r["official_ms"])
        assert {"official", "ours", "edgetam"} <= set(rows[1]["added_object_ms"])
    assert parts["bench_bf16_compiled"]["status"] == "skipped"
    assert (tmp_path / "parts" / "parity.json").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_run_refuses_cuda_without_a_gpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_run.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr


def test_parity_comparison_flags_a_wrong_result():
    """Negative control for the script's checks: shifted masks fail both thresholds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_run

    g = torch.Generator().manual_seed(0)
    right = [torch.randn(2, 24, 32, generator=g) for _ in range(3)]
    wrong = [r.roll(3, dims=-1) for r in right]
    same = gpu_run.compare(right, right)
    assert same["max_rel_l2"] == 0.0 and same["min_iou"] == 1.0 and same["frames"] == 3
    bad = gpu_run.compare(wrong, right)
    assert bad["max_rel_l2"] > gpu_run.REL_L2_OFFICIAL and bad["min_iou"] < gpu_run.IOU_REDUCED
