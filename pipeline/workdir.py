"""The layout of work_dir: every file name the stages' tables, caches and manifests live under.

Only ``pipeline`` knows these names; stage functions are handed the paths (or the tables) they need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class WorkDir:
    """Paths inside one work_dir."""

    root: Path

    @property
    def recordings(self) -> Path:
        return self.root / "recordings.parquet"

    @property
    def segments(self) -> Path:
        return self.root / "segments.parquet"

    @property
    def vad_recordings(self) -> Path:
        return self.root / "vad_recordings.parquet"

    @property
    def batches(self) -> Path:
        return self.root / "batches.parquet"

    @property
    def pcm(self) -> Path:
        """The PCM cache folder (16 kHz mono int16 per recording, and vad sidecars)."""
        return self.root / "pcm"

    @property
    def store(self) -> Path:
        """The content-keyed result stores (``asr-<key>/`` part files)."""
        return self.root / "store"

    @property
    def lock(self) -> Path:
        """Held by the one run working on this work_dir."""
        return self.root / ".vadpack.lock"

    @property
    def resolved_config(self) -> Path:
        return self.root / "config.resolved.yaml"

    def manifest(self, stage: str) -> Path:
        return self.root / "manifests" / f"{stage}.json"
