"""The local engine: worker processes on this machine (vad's pool, asr's replicas or one process)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from vadpack.asr.config import AsrConfig
from vadpack.asr.types import AsrSummary
from vadpack.core.partstore import PartStore
from vadpack.core.types import RecordingRef
from vadpack.vad.config import VadConfig
from vadpack.vad.types import VadOutcome


@dataclass(frozen=True, slots=True)
class LocalEngine:
    """The stages' own runners, in this process and its workers.

    Attributes:
        progress: show progress bars (on a terminal only).
    """

    progress: bool = True
    name: str = "local"

    def vad_outcomes(self, refs: Sequence[RecordingRef], cache_dir: Path, vad_cfg: VadConfig,
                     force: bool) -> Iterator[VadOutcome]:
        from vadpack.vad.stage import run_vad

        return run_vad(refs, cache_dir, vad_cfg, progress=self.progress, force=force)

    def decode(self, batches: pa.Table, pcm_dir: Path, store_dir: PartStore | Path, asr_cfg: AsrConfig) -> AsrSummary:
        from vadpack.asr.stage import run_asr

        return run_asr(batches, pcm_dir, store_dir, asr_cfg, progress=self.progress)
