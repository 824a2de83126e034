"""The figures of each stage of a run, as the stage functions return them (``StageResult.summary``).

They travel as frozen dataclasses; ``as_dict`` gives the plain values written into the stage's
manifest (JSON), under the keys the manifests have always had (bench/ and the tests read them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from vadpack.asr.types import AsrSummary
from vadpack.speakers.types import SpeakersSummary


class StageFigures(Protocol):
    """What every stage summary gives: its plain values, for the manifest."""

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """Figures of the scan stage.

    Attributes:
        files: input files listed (rows of the recordings table).
        failed: files that could not be read as audio.
        audio_h: hours of audio the files hold.
        skipped: files beside the inputs that are not audio (``.rttm``, ``.json``, ...).
    """

    files: int = 0
    failed: int = 0
    audio_h: float = 0.0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class VadSummary:
    """Figures of the vad stage.

    Attributes:
        segments: speech segments found.
        failed: recordings that could not be decoded or segmented.
        audio_h: hours of audio segmented.
        xrt: audio seconds per wall second of the stage.
    """

    segments: int = 0
    failed: int = 0
    audio_h: float = 0.0
    xrt: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SpeakersStageSummary:
    """Figures of the speakers stage.

    Attributes:
        enabled: ``speakers.enabled``; off, the stage did nothing and the other figures are 0.
        labelled_recordings: contents labelled in this run.
        reused_recordings: contents whose labels came from the store.
        labelling: what the labeller measured (windows, embedding speed, ...); None when nothing
            was labelled.
    """

    enabled: bool = False
    labelled_recordings: int = 0
    reused_recordings: int = 0
    labelling: SpeakersSummary | None = None

    @property
    def embed_xrt(self) -> float:
        """Audio seconds embedded per wall second (0 when nothing was labelled)."""
        return self.labelling.embed_xrt if self.labelling is not None else 0.0

    def as_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False}
        out: dict[str, Any] = {"enabled": True, "labelled_recordings": self.labelled_recordings,
                               "reused_recordings": self.reused_recordings}
        if self.labelling is not None:
            figures = self.labelling.as_dict()
            figures.pop("speakers_per_recording")  # one entry per recording: too much for a manifest
            out.update(figures)
        return out


@dataclass(frozen=True, slots=True)
class PackSummary:
    """Figures of the pack stage.

    Attributes:
        batches: batches packed.
        budget_s: the budget, in padded seconds per batch.
        budget_basis: what the budget resolved from (``pipeline.stages.budget_basis``).
        segments_to_decode: segments that had no transcript in the store.
        segments_in_store: segments whose transcript the store held.
        padding_efficiency: real frames / padded frames of the batches.
    """

    batches: int = 0
    budget_s: float = 0.0
    budget_basis: str = ""
    segments_to_decode: int = 0
    segments_in_store: int = 0
    padding_efficiency: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AsrStageSummary:
    """Figures of the asr stage: what the engine decoded, and the run's segments decoded and reused.

    Attributes:
        engine: the engine that decoded (``local`` or ``ray``).
        decoding: the engine's own figures (the same ``AsrSummary`` from every engine).
        decoded_segments: segments of the archive decoded in this run (a span two copies of a file
            share is two segments, decoded once).
        decoded_audio_s: seconds of speech decoded in this run.
        reused_segments: segments whose transcript came from the store.
    """

    engine: str
    decoding: AsrSummary
    decoded_segments: int = 0
    decoded_audio_s: float = 0.0
    reused_segments: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = self.decoding.as_dict()
        if self.engine != "local":  # what bench/ray_scaling.py reads: actors, and the decoding window
            out.update(engine=self.engine, actors=self.decoding.replicas, decode_window_s=self.decoding.wall_s)
        out.update(decoded_segments=self.decoded_segments, decoded_audio_s=self.decoded_audio_s,
                   reused_segments=self.reused_segments)
        return out
