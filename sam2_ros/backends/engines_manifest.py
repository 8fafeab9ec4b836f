"""``engines.json``: what a TensorRT engine folder holds, checked before TensorRT sees a byte.

Beside :mod:`sam2_ros.backends.manifest` (the ONNX export's ``manifest.json``). ``python -m export
engines`` writes ``engines.json``: the model settings, the GPU and TensorRT version that built the
engines, the build settings (precision, object batch limit ``max_objects``, prompt points) and
every file's SHA-256. These checks are pure (no TensorRT, no GPU): the file's fields, the files'
hashes, the machine (``env``, from :func:`sam2_ros.backends.trt_versions.runtime_environment`),
and an input shape against an engine's optimisation profile. The tracker settings are checked
against the build settings at start-up by ``sam2_ros.factory.check_export``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sam2_ros.errors import UserError
from sam2_ros.settings import MAX_OBJECTS
from sam2_ros.utils.files import sha256_file

ENGINES_FILE = "engines.json"
FORMAT_VERSION = 1
GRAPHS = ("image_encoder", "memory_attention", "mask_decoder", "memory_encoder", "mask_downsample")
CONSTANTS = ("no_obj_ptr", "no_mem_embed")
#: engines.json's build precision -> the tracker setting ``precision`` it corresponds to.
ENGINE_PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class EngineError(UserError, RuntimeError):
    """Engines that cannot be used here: missing, corrupt, or built for another GPU/TensorRT."""


def rebuild_command(manifest: Mapping[str, Any], engine_dir: Path | str | None = None) -> str:
    """The exact ``python -m export engines`` call that rebuilds these engines on this machine."""
    b = manifest.get("build") if isinstance(manifest.get("build"), dict) else {}
    out = engine_dir if engine_dir is not None else b.get("out", "ENGINE_DIR")
    return " ".join(
        shlex.quote(str(a))
        for a in (
            "python",
            "-m",
            "export",
            "engines",
            "--onnx",
            b.get("onnx_dir", "ONNX_DIR"),
            "--out",
            out,
            f"--{b.get('precision', 'fp16')}",
            "--max-objects",
            b.get("max_objects", MAX_OBJECTS.default),
            "--max-points",
            b.get("max_points", 8),
        )
    )


_REQUIRED = {
    "format": int,
    "tensorrt": str,
    "gpu": dict,
    "model": dict,
    "checkpoint_sha256": str,
    "build": dict,
    "constants": dict,
    "engines": dict,
}


def read_engines_manifest(engine_dir: Path | str) -> dict[str, Any]:
    """``engine_dir/engines.json``, parsed and checked for the fields the backend relies on."""
    engine_dir = Path(engine_dir)
    path = engine_dir / ENGINES_FILE
    hint = "build engines with `python -m export engines --onnx ONNX_DIR --out DIR` (see docs/export.md)"
    if not path.is_file():
        raise EngineError(f"{path} not found: {engine_dir} holds no TensorRT engines; {hint}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(
            f"{path} is not valid JSON ({exc}); the file is truncated or damaged. Rebuild the engines: {hint}"
        ) from None
    if not isinstance(manifest, dict):
        raise EngineError(f"{path} must hold a JSON object, got {type(manifest).__name__}; {hint}")
    bad = [k for k, kind in _REQUIRED.items() if not isinstance(manifest.get(k), kind)]
    if bad:
        raise EngineError(
            f"{path} lacks or has malformed fields {bad}; it was not written by "
            f"`python -m export engines` or is damaged. Rebuild: {rebuild_command(manifest, engine_dir)}"
        )
    if manifest["format"] != FORMAT_VERSION:
        raise EngineError(
            f"{path} has format {manifest['format']}, this sam2_ros reads format {FORMAT_VERSION}. "
            f"Rebuild: {rebuild_command(manifest, engine_dir)}"
        )
    missing = [g for g in GRAPHS if g not in manifest["engines"]]
    if missing:
        raise EngineError(f"{path} lists no engine for {missing}. Rebuild: {rebuild_command(manifest, engine_dir)}")
    return manifest


def verify_engine_files(manifest: Mapping[str, Any], engine_dir: Path | str) -> None:
    """Every engine and the constants file exists and has the SHA-256 engines.json records.

    Runs before TensorRT sees a byte: deserialising a damaged plan can crash the process
    instead of raising.
    """
    engine_dir = Path(engine_dir)
    entries = [(name, manifest["engines"][name]) for name in GRAPHS] + [("constants", manifest["constants"])]
    for name, entry in entries:
        path = engine_dir / entry["file"]
        if not path.is_file():
            raise EngineError(f"{path} ({name}) is missing. Rebuild: {rebuild_command(manifest, engine_dir)}")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise EngineError(
                f"{path} ({name}) is corrupt or was modified: its SHA-256 is {digest}, "
                f"engines.json records {entry['sha256']}. Rebuild: "
                f"{rebuild_command(manifest, engine_dir)}"
            )


def check_manifest(manifest: Mapping[str, Any], env: Mapping[str, Any], engine_dir: Path | str | None = None) -> None:
    """Refuse engines built for another GPU or TensorRT version (pure: ``env`` describes this machine).

    ``env`` is :func:`runtime_environment`'s dict. A plan only runs on the GPU model
    (name and compute capability) and the exact TensorRT version that built it.
    """
    problems = []
    built_gpu, here_gpu = manifest["gpu"], env["gpu"]
    if built_gpu.get("name") != here_gpu["name"]:
        problems.append(
            f"they were built for the GPU '{built_gpu.get('name')}' but this machine has '{here_gpu['name']}'"
        )
    if str(built_gpu.get("compute_capability")) != str(here_gpu["compute_capability"]):
        problems.append(
            f"they were built for compute capability {built_gpu.get('compute_capability')} but this "
            f"GPU has compute capability {here_gpu['compute_capability']}"
        )
    if manifest["tensorrt"] != env["tensorrt"]:
        problems.append(
            f"they were built with TensorRT {manifest['tensorrt']} but TensorRT {env['tensorrt']} is installed here"
        )
    if problems:
        where = f"The engines in {engine_dir}" if engine_dir is not None else "These engines"
        raise EngineError(
            f"{where} cannot run here: {'; '.join(problems)}. TensorRT engines only run on the GPU "
            f"model and TensorRT version that built them. Rebuild them on this machine:\n  "
            f"{rebuild_command(manifest, engine_dir)}"
        )


def check_profile(
    graph: str, name: str, shape: tuple[int, ...], dims: list[int | str], profile: Mapping[str, list[int]]
) -> None:
    """Raise a clear error when an input shape lies outside the engine's optimisation profile.

    ``dims`` are the input's ONNX dimensions (``"B"``: objects per call, ``"N"``: prompt points).
    """
    lo, hi = profile["min"], profile["max"]
    if len(shape) == len(lo) and all(a <= s <= b for s, a, b in zip(shape, lo, hi)):
        return
    hints = {
        "B": "objects per call; rebuild with a larger --max-objects",
        "N": "prompt points per object; rebuild with a larger --max-points",
    }
    why = [
        f"axis {i} ({d}: {hints.get(d, 'fixed')}) is {s}, allowed {a}..{b}"
        for i, (s, d, a, b) in enumerate(zip(shape, dims, lo, hi))
        if not a <= s <= b
    ]
    raise ValueError(
        f"{graph}: input '{name}' has shape {tuple(shape)}, outside the engine's profile "
        f"(min {tuple(lo)}, max {tuple(hi)}): {'; '.join(why) or 'wrong rank'}"
    )
