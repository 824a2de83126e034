"""What the stages ask of an execution engine: vad over recordings, and decoding packed batches.

The stage functions (``pipeline.stages``) call the engine the run chose once (``engine_for``); they
never ask which one it is. Every engine runs the same stage code (``vad.stage.process_recording``,
``asr.stage.start_decoder`` and its ``Decoder``), writes the same PCM cache and the same part files,
and returns the same figures, so the tables do not depend on the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    from vadpack.asr.config import AsrConfig
    from vadpack.asr.types import AsrSummary
    from vadpack.core.partstore import PartStore
    from vadpack.core.types import RecordingRef
    from vadpack.pipeline.config import Config
    from vadpack.vad.config import VadConfig
    from vadpack.vad.types import VadOutcome


class Engine(Protocol):
    """Where the heavy stages run.

    Attributes:
        name: the engine's name as configured (``local``, ``ray``).
    """

    name: str

    def vad_outcomes(self, refs: Sequence[RecordingRef], cache_dir: Path, vad_cfg: VadConfig,
                     force: bool) -> Iterator[VadOutcome]:
        """Decode each recording into the PCM cache and segment it; one outcome per recording, in any order.

        Args:
            refs: the recordings scan accepted.
            cache_dir: the PCM cache folder (it exists).
            vad_cfg: the vad config.
            force: decode again even where the cache holds a recording.
        """
        ...

    def decode(self, batches: pa.Table, pcm_dir: Path, store_dir: PartStore | Path, asr_cfg: AsrConfig) -> AsrSummary:
        """Decode the spans of ``batches`` that ``store_dir`` lacks into part files there.

        Args:
            batches: the packer's table (``core.tables.BATCHES``).
            pcm_dir: the PCM cache folder.
            store_dir: the transcript store folder the parts go into.
            asr_cfg: the asr config.

        Returns:
            What was decoded, with ``already_stored`` counting the spans the store held.
        """
        ...


def engine_for(cfg: Config, progress: bool = True) -> Engine:
    """The engine ``cfg.engine`` names; Ray is imported only when it is the one."""
    if cfg.engine == "ray":
        from vadpack.pipeline.engines.ray_engine import RayEngine

        return RayEngine(cfg.ray)
    from vadpack.pipeline.engines.local import LocalEngine

    return LocalEngine(progress)
