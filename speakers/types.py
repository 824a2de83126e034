"""Data types of the speakers stage. Sample offsets at 16 kHz are the source of truth.

The stage works on recordings' contents (``content_id``), not on recording ids: two copies of one
file are labelled once, and a renamed file keeps its labels. Its speech segments are
``core.types.Span`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from vadpack.core.types import SampleRange


@dataclass(frozen=True, slots=True)
class Window(SampleRange):
    """An embedding window inside one speech segment: samples [start_sample, end_sample).

    Attributes:
        content_id: the recording's content (its PCM cache file).
        segment_index: the position of the segment it lies in among the content's segments.
        start_sample: first sample, from the start of the recording.
        end_sample: one past the last sample.
    """

    content_id: str
    segment_index: int
    start_sample: int
    end_sample: int

    @property
    def center_sample(self) -> int:
        return (self.start_sample + self.end_sample) // 2


@dataclass(frozen=True, slots=True)
class WindowFailure:
    """A window that got no embedding, and why (a person can act on the reason)."""

    window: Window
    error: str


@dataclass(frozen=True, slots=True)
class FeatureBatch:
    """The model inputs of one batch, prepared ahead of the model.

    Attributes:
        windows: the windows whose features are ready, in batch order.
        feats: one (frames, feature_dim) array per window in ``windows``.
        failed: windows whose audio or features could not be made, with the reason.
    """

    windows: tuple[Window, ...]
    feats: tuple[np.ndarray, ...]
    failed: tuple[WindowFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class EmbedOutcome:
    """What the model made of one batch: an embedding or a reason per window, in batch order.

    Attributes:
        embeddings: (n_ok, dim) float32, L2-normalised, one row per window in ``ok``.
        ok: the windows that got an embedding.
        failed: the windows that did not (for example out of memory on their own).
        splits: how often the batch was halved after running out of memory.
    """

    embeddings: np.ndarray
    ok: tuple[Window, ...]
    failed: tuple[WindowFailure, ...] = ()
    splits: int = 0


@dataclass(frozen=True, slots=True)
class SpeakerSpan:
    """Samples [start_sample, end_sample) of one recording's content spoken by ``speaker`` (``S1``, ``S2``, ...)."""

    content_id: str
    start_sample: int
    end_sample: int
    speaker: str


@dataclass(frozen=True, slots=True)
class ContentSpeakers:
    """The result for one recording's content: its spans, or the failures that left it without any.

    Attributes:
        content_id: the content.
        spans: speaker spans in time order, inside its speech segments.
        n_speakers: distinct speakers found.
        failures: windows without an embedding; when every window failed the content has no spans.
        overlap: the [start, end) regions the segmentation model calls >= 2 speakers; None when it
            did not run on this content.
    """

    content_id: str
    spans: tuple[SpeakerSpan, ...]
    n_speakers: int
    failures: tuple[WindowFailure, ...] = ()
    overlap: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class SpeakersSummary:
    """Figures of one run of the stage (``as_dict`` is what ``run_speakers`` reports).

    ``recordings`` counts distinct contents labelled; ``speakers_per_recording`` is keyed by content id;
    ``regions`` is the ``speakers.regions`` that ran (``auto`` resolved).
    """

    recordings: int = 0
    windows: int = 0
    failed_windows: int = 0
    failed_recordings: int = 0
    audio_s: float = 0.0
    embed_s: float = 0.0
    wall_s: float = 0.0
    batches: int = 0
    oom_splits: int = 0
    device: str = ""
    backend: str = ""
    regions: str = ""
    speakers_per_recording: dict[str, int] = field(default_factory=dict)

    @property
    def embed_xrt(self) -> float:
        """Audio seconds labelled per wall second (0 when nothing was)."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "recordings": self.recordings, "windows": self.windows, "failed_windows": self.failed_windows,
            "failed_recordings": self.failed_recordings, "audio_s": self.audio_s, "embed_s": self.embed_s,
            "wall_s": self.wall_s, "embed_xrt": self.embed_xrt,
            "batches": self.batches, "oom_splits": self.oom_splits, "device": self.device,
            "backend": self.backend, "regions": self.regions,
            "speakers_per_recording": dict(self.speakers_per_recording),
        }
