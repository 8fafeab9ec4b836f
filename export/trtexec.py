"""The trtexec equivalent of ``python -m export engines``: one command per graph, as a script."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sam2_ros.errors import UsageError

if TYPE_CHECKING:
    from export.engines import GraphPlan

ENGINE_SUFFIX = ".engine"


def trtexec_command(
    plan: GraphPlan, engine_path: Path, precision: str, workspace_gb: float, timing_cache: Path | None
) -> list[str]:
    """The trtexec call that builds the same engine as ``build_engines`` (TensorRT 10 flags)."""
    cmd = [
        "trtexec",
        f"--onnx={plan.onnx_path}",
        f"--saveEngine={engine_path}",
        "--skipInference",
        f"--memPoolSize=workspace:{int(workspace_gb * 1024)}",
    ]
    if precision == "fp32":
        cmd.append("--noTF32")
    else:
        cmd.append(f"--{precision}")
    for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
        if plan.profile:
            cmd.append(flag + "=" + ",".join(f"{n}:{'x'.join(map(str, p[key]))}" for n, p in plan.profile.items()))
    if timing_cache is not None:
        cmd.append(f"--timingCacheFile={timing_cache}")
    names = list(plan.fp32_layers)  # the same list the Python builder pins
    bad = [n for n in names if "," in n or ":" in n]
    if bad:
        raise UsageError(
            f"{plan.graph}: node names {bad[:3]} contain ',' or ':' and cannot be passed to "
            f"--layerPrecisions; use `python -m export engines` instead of trtexec"
        )
    if names:
        cmd += [
            "--precisionConstraints=obey",
            "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in names),
            "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in names),
        ]
    return cmd


def trtexec_script(
    plans: Mapping[str, GraphPlan],
    out_dir: Path,
    precision: str,
    workspace_gb: float,
    timing_cache: Path | None,
    adopt_command: str,
) -> str:
    """A shell script with the five trtexec builds, then the command that writes engines.json."""
    folders = [out_dir] + ([timing_cache.parent] if timing_cache is not None else [])
    lines = [
        "#!/usr/bin/env bash",
        "# TensorRT 10 trtexec equivalent of `python -m export engines` (generated; see docs/export.md, trtexec).",
        "# Layers kept in float32 are named by their ONNX nodes, which the ONNX parser uses as layer names.",
        "# Relative paths are relative to the folder this script was generated from: run it from there.",
        "set -euo pipefail",
        "# JetPack installs trtexec outside PATH; TRTEXEC=/path/to/trtexec overrides both.",
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        "mkdir -p " + " ".join(shlex.quote(str(f)) for f in folders),
    ]
    for graph, plan in plans.items():
        cmd = trtexec_command(plan, out_dir / f"{graph}{ENGINE_SUFFIX}", precision, workspace_gb, timing_cache)
        lines.append(" \\\n    ".join(['"$TRTEXEC"'] + [shlex.quote(c) for c in cmd[1:]]))
    lines.append(adopt_command)
    return "\n".join(lines) + "\n"
