"""``manifest.json``: what an export folder holds, and proof that it is unmodified.

Shared by the ONNX export (which writes it), the ONNX Runtime backend, and the TensorRT
builder/runtime. It records the model, the weights (checkpoint SHA-256, or "random"), the
settings the graphs were exported for (image size, memory-bank capacity, opset), the
decoder settings the runtimes apply outside the graphs, and for every file its SHA-256
and I/O. Readers verify each hash, so a truncated copy, a graph from another export or a
hand-edited file fails with a clear :class:`ManifestError` instead of wrong masks.

The TensorRT engines built from a folder get their own ``engines.json`` (``export/engines.py``).
Writes are atomic (:mod:`sam2_ros.utils.files`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sam2_ros.backends.contract import MANIFEST_FILE
from sam2_ros.errors import InputError
from sam2_ros.utils.files import atomic_write, sha256_file

FORMAT_VERSION = 1
CHUNK = 1 << 20


class ManifestError(InputError, RuntimeError):
    """A missing, corrupt or inconsistent export folder (with what to do about it)."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the export: its name in the folder, SHA-256 and, for graphs, its I/O."""

    file: str
    sha256: str
    inputs: tuple[dict, ...] = ()
    outputs: tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        entry = {"file": self.file, "sha256": self.sha256}
        if self.inputs or self.outputs:
            entry.update(inputs=list(self.inputs), outputs=list(self.outputs))
        return entry

    @classmethod
    def from_dict(cls, d: dict) -> FileEntry:
        return cls(d["file"], d["sha256"], tuple(d.get("inputs", ())), tuple(d.get("outputs", ())))


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` (see the module docstring)."""

    model: str
    checkpoint_sha256: str  # hex digest of the checkpoint file, or "random"
    image_size: int
    max_cond_frames: int
    opset: int
    num_maskmem: int
    max_obj_ptrs: int
    stability: tuple[float, float] | None  # (delta, thresh) of the dynamic single-mask fallback
    multimask_points: tuple[int, int]  # multimask output for min..max prompt points
    graphs: dict[str, FileEntry]
    constants: FileEntry
    mem_tokens: int | None = None  # memory tokens per frame (EdgeTAM: 512); None for H x W maps (SAM 2)

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "checkpoint_sha256": self.checkpoint_sha256,
            "image_size": self.image_size,
            "max_cond_frames": self.max_cond_frames,
            "opset": self.opset,
            "num_maskmem": self.num_maskmem,
            "max_obj_ptrs": self.max_obj_ptrs,
            "mem_tokens": self.mem_tokens,
            "decoder": {
                "stability": None
                if self.stability is None
                else {"delta": self.stability[0], "thresh": self.stability[1]},
                "multimask_min_points": self.multimask_points[0],
                "multimask_max_points": self.multimask_points[1],
            },
            "graphs": {name: entry.as_dict() for name, entry in self.graphs.items()},
            "constants": self.constants.as_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        if d.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"manifest format {d.get('format_version')!r} is not {FORMAT_VERSION}; re-export")
        dec = d["decoder"]
        stab = dec["stability"]
        return cls(
            model=d["model"],
            checkpoint_sha256=d["checkpoint_sha256"],
            image_size=int(d["image_size"]),
            max_cond_frames=int(d["max_cond_frames"]),
            opset=int(d["opset"]),
            num_maskmem=int(d["num_maskmem"]),
            max_obj_ptrs=int(d["max_obj_ptrs"]),
            stability=None if stab is None else (float(stab["delta"]), float(stab["thresh"])),
            multimask_points=(int(dec["multimask_min_points"]), int(dec["multimask_max_points"])),
            graphs={name: FileEntry.from_dict(e) for name, e in d["graphs"].items()},
            constants=FileEntry.from_dict(d["constants"]),
            mem_tokens=None if d.get("mem_tokens") is None else int(d["mem_tokens"]),
        )


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` atomically; returns its path."""
    path = Path(folder) / MANIFEST_FILE
    atomic_write(path, (json.dumps(manifest.as_dict(), indent=2) + "\n").encode())
    return path


def verify_file(folder: str | os.PathLike, entry: FileEntry) -> Path:
    """The path of ``entry`` in ``folder`` after checking it exists and its SHA-256 matches."""
    path = Path(folder) / entry.file
    if not path.is_file():
        raise ManifestError(f"{path} is listed in {MANIFEST_FILE} but missing; re-export into {folder}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ManifestError(
            f"{path} was modified after export (sha256 {digest[:12]}… but {MANIFEST_FILE} "
            f"records {entry.sha256[:12]}…); re-export into {folder}"
        )
    return path


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """Parse ``folder/manifest.json`` and verify every listed file's SHA-256."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(
            f"no {MANIFEST_FILE} in {folder}: export one with "
            f"`python -m export onnx --model NAME --checkpoint PATH --out {folder}`"
        )
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text()))
    except ManifestError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{path} is corrupt ({type(exc).__name__}: {exc}); re-export into {folder}") from exc
    for entry in [*manifest.graphs.values(), manifest.constants]:
        verify_file(folder, entry)
    return manifest
