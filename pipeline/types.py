"""Data types passed between the runner and the stages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecordingRef:
    """A recording the scan stage accepted: its stable id and its path on disk."""

    recording_id: str
    path: str


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What probing an input file found."""

    duration_s: float
    sample_rate: int
    channels: int
    codec: str


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What decoding one input into the PCM cache produced.

    Attributes:
        n_samples: samples written at 16 kHz (what was readable, also for a truncated file).
        warning: a caveat a person should know (truncated file, NaN samples replaced), else None.
    """

    n_samples: int
    warning: str | None = None
