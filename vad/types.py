"""Data types of the vad stage. Sample offsets at 16 kHz are the source of truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vadpack.core.types import Segment


@dataclass(frozen=True, slots=True)
class VadOutcome:
    """The result of the vad stage for one recording.

    Attributes:
        n_samples: decoded length at 16 kHz (what was readable, also for a truncated file).
        segments: speech segments in time order, each at most max_segment_s long.
        error: why the recording failed (it then has no segments), else None.
        warning: something a person should know that did not stop the recording (e.g. truncated file).
    """

    recording_id: str
    n_samples: int
    segments: tuple[Segment, ...]
    error: str | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class FrameTrack:
    """Per-frame classifier output for one recording, the input of the segmenter.

    Frame ``i`` covers samples ``[i * frame_samples, min((i + 1) * frame_samples, n_samples))``; the
    last frame may be partial.

    Attributes:
        speech: bool per frame, True where the classifier heard speech.
        energy_db: float32 per frame, mean power in dB full scale (used to cut at quiet points and,
            optionally, to gate out quiet frames).
        frame_samples: frame length in samples at 16 kHz.
        n_samples: recording length in samples at 16 kHz.
        ac_energy_db: float32 per frame, mean power in dBFS of the frame minus its own mean: a DC
            offset or a slow drift (a breath on the microphone) is not sound. None when not measured
            (a track built by hand); the soft-edge step (:mod:`vad.edges`) then leaves the track alone.
        emphasis_energy_db: float32 per frame, mean power in dBFS of the frame's first difference
            (pre-emphasis, +6 dB per octave), so that fricatives above 4 kHz stand out and rumble does
            not. None when not measured.
    """

    speech: np.ndarray
    energy_db: np.ndarray
    frame_samples: int
    n_samples: int
    ac_energy_db: np.ndarray | None = None
    emphasis_energy_db: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(self.speech)
