"""Stage manifests: what a stage was computed from, written last, so a stage is complete only once its
manifest exists.

A stage is *done* when its manifest exists and both its config hash and its input fingerprint match
what the current config and the upstream artifacts give; *stale* when a manifest exists but one of
them differs; *missing* when there is none.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vadpack.core import __version__
from vadpack.core.atomic import write_text_atomic


@dataclass(frozen=True, slots=True)
class Manifest:
    """The record a stage leaves after it completes."""

    stage: str
    config_hash: str
    input_fingerprint: str
    output_fingerprint: str
    rows: int
    finished_at: float
    vadpack_version: str = __version__
    summary: dict = field(default_factory=dict)  # the stage's own figures (wall time, speed, counts)
    config_parts: dict = field(default_factory=dict)  # named hashes behind config_hash, to say what changed


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(Path(path).read_text())
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (fsync-ed); it is the last thing a stage writes."""
    write_text_atomic(path, json.dumps(asdict(manifest), indent=1))


def new_manifest(stage: str, config_parts: dict[str, str], input_fp: str, output_fp: str, rows: int,
                 summary: dict | None = None) -> Manifest:
    """The manifest of a stage that just finished (its summary keeps plain values only)."""
    plain = {k: v for k, v in (summary or {}).items() if isinstance(v, (int, float, str, bool)) or v is None}
    return Manifest(stage, combine_parts(config_parts), input_fp, output_fp, rows, time.time(), summary=plain,
                    config_parts=dict(config_parts))


def combine_parts(parts: dict[str, str]) -> str:
    """One hash of named config hashes."""
    return combine(*(f"{k}={v}" for k, v in sorted(parts.items())))


def files_fingerprint(paths: list[Path]) -> str:
    """A content hash of the given files (each file, or every .parquet in a folder, in name order)."""
    h = hashlib.sha256()
    for p in paths:
        files = sorted(q for q in p.glob("*.parquet") if not q.name.startswith(".")) if p.is_dir() else [p]
        for f in files:
            h.update(f.name.encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def combine(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
