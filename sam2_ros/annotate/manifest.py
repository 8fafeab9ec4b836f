"""``DATASET/manifest.json``: what the dataset holds, how it was made, and what failed.

One entry per input (keyed by its output folder name): the input, its SHA-256 and cheap
fingerprint, the prompts used, status (``done`` / ``failed``) with the error, counts and
timings. The driver is its only writer and rewrites it atomically after every input, so an
interrupted run leaves a manifest that matches the folders on disk. A rerun skips inputs whose
entry is ``done`` with the same content and options (``options_key``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sam2_ros.errors import InputError
from sam2_ros.utils.files import atomic_write

MANIFEST = "manifest.json"
FORMAT = 1
DONE, FAILED = "done", "failed"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class DatasetManifest:
    def __init__(self, root: Path) -> None:
        self.path = root / MANIFEST
        self.doc: dict[str, Any] = {"format": FORMAT, "created": now(), "inputs": {}}
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{self.path} cannot be read ({exc}); move it away to start a new dataset") from None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("inputs"), dict):
                raise InputError(
                    f"{self.path} is not a sam2-ros annotate manifest (format {FORMAT}); use another --out folder"
                )
            self.doc = doc

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        return self.doc["inputs"]

    def is_done(self, name: str, options_key: str, fingerprint: str | None = None, sha256: str | None = None) -> bool:
        """Whether input ``name`` is finished with these options (and this fingerprint or content hash)."""
        entry = self.inputs.get(name)
        if not entry or entry.get("status") != DONE or entry.get("options_key") != options_key:
            return False
        if not (self.path.parent / name).is_dir():
            return False
        return (fingerprint is not None and entry.get("fingerprint") == fingerprint) or (
            sha256 is not None and entry.get("sha256") == sha256
        )

    def record(self, name: str, entry: dict[str, Any]) -> None:
        self.inputs[name] = entry

    def save(self, run: dict[str, Any]) -> None:
        """Write atomically, with ``run`` (this run's settings) and totals over all inputs."""
        entries = self.inputs.values()
        self.doc.update(run)
        self.doc["updated"] = now()
        self.doc["totals"] = {
            "inputs": len(self.inputs),
            "done": sum(e.get("status") == DONE for e in entries),
            "failed": sum(e.get("status") == FAILED for e in entries),
            "frames": sum(e.get("frames", 0) for e in entries if e.get("status") == DONE),
            "annotations": sum(e.get("annotations", 0) for e in entries if e.get("status") == DONE),
        }
        self.doc["inputs"] = dict(sorted(self.inputs.items()))
        atomic_write(self.path, json.dumps(self.doc, indent=1) + "\n")
