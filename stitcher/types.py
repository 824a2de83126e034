"""Data types of the stitcher's text and export functions. Times are absolute seconds in the recording."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa


@dataclass(frozen=True, slots=True)
class TokenTime:
    """One model token with its time span.

    Attributes:
        token: the token as the model wrote it (may end in the subword marker ``@@``).
        start_s: start, seconds from the start of the recording.
        end_s: end, seconds from the start of the recording.
        speaker: who says it (``S1``, ...); None without speakers.
    """

    token: str
    start_s: float
    end_s: float
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class Sentence:
    """A run of tokens without a long pause inside; one subtitle cue.

    Attributes:
        text: the tokens joined script-aware (see ``stitcher.text.join_tokens``).
        start_s: start of the first token.
        end_s: end of the last token.
        tokens: the tokens it was made of, special tokens left out.
        speaker: who says it; None without speakers (a cue never holds two speakers).
        language: the language of its segment, when the model tells (SenseVoice), else None.
    """

    text: str
    start_s: float
    end_s: float
    tokens: tuple[TokenTime, ...] = ()
    speaker: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class SegmentText:
    """The transcript of one speech segment.

    Attributes:
        segment_index: index of the segment within its recording.
        start_s: segment start.
        end_s: segment end.
        text: joined text; None when the segment failed in asr.
        tokens: the segment's tokens with absolute times (may be empty).
        speaker: who covers most of the segment; None without speakers.
        language: the language the model heard (SenseVoice), else None.
        emotion: the emotion the model heard (SenseVoice), else None.
        event: the audio event the model heard (SenseVoice), else None.
    """

    segment_index: int
    start_s: float
    end_s: float
    text: str | None
    tokens: tuple[TokenTime, ...] = ()
    speaker: str | None = None
    language: str | None = None
    emotion: str | None = None
    event: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentText:
    """One recording's transcript, the unit of the human-readable exports.

    Attributes:
        recording_id: the unique id given by the scan stage.
        path: the input file.
        duration_s: decoded duration of the recording.
        text: the whole document text (``stitcher.text.join_segments`` of the segments).
        segments: the segments in time order.
        languages: the languages its segments were heard in, most speech first (empty when the
            model does not tell).
    """

    recording_id: str
    path: str
    duration_s: float
    text: str
    segments: tuple[SegmentText, ...] = ()
    languages: tuple[str, ...] = ()


class ResultSource(Protocol):
    """Where stitch loads stored results from, a group of recordings at a time (the pipeline's stores).

    Attributes:
        with_speakers: whether the speakers stage ran (speaker rows are loaded, else None).
    """

    with_speakers: bool

    def versions(self) -> pa.Table:
        """``content_id``, ``version``: a digest of the stored results each content has, which changes
        whenever they may have (new, rewritten or removed store parts)."""
        ...

    def load_groups(self, segments: pa.Table, group_of_row: np.ndarray,
                    n_groups: int) -> Iterator[tuple[int, pa.Table, pa.Table | None]]:
        """For each group 0..n_groups-1 in order: the results (``SEGMENT_RESULTS``) of the rows of
        ``segments`` in that group and their recordings' speaker rows (``SPEAKER_LABELS``, or None)."""
        ...


@dataclass(frozen=True, slots=True)
class StitchInputs:
    """The work tables the stitch stage reads (schemas in ``core.tables``).

    Attributes:
        recordings: the scan stage's table (``RECORDINGS``).
        vad_recordings: the vad stage's per-recording table (``VAD_RECORDINGS``).
        segments: the vad stage's segments (``VAD_SEGMENTS``).
        results: each segment's asr result (``SEGMENT_RESULTS``), when given whole; else ``source``.
        speakers: each recording's speaker rows (``SPEAKER_LABELS``), when given whole; None when the
            speakers stage is off.
        source: where to load results a group at a time; with it, stitch rebuilds only the
            recordings whose inputs changed (without it, every recording, every run).
        export_roots: the input folders; export files mirror the folders below their common base.
    """

    recordings: pa.Table
    vad_recordings: pa.Table
    segments: pa.Table
    results: pa.Table | None = None
    speakers: pa.Table | None = None
    source: ResultSource | None = None
    export_roots: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StitchSummary:
    """Figures of the stitch stage: rows of each public table, and what this run rewrote.

    Attributes:
        documents: rows of the documents table (one per input).
        segments: rows of the segments table.
        tables: rows of the other tables (tokens, words, turns, speakers), by name.
        failures: rows of the failures table.
        exports: export files this run wrote (SRT, VTT, JSON, TXT), for the recordings it rebuilt.
        exports_removed: exports of recordings that left the archive, or of formats no longer asked for.
        recordings_rebuilt: recordings whose rows this run rebuilt (new or changed).
        recordings_removed: recordings whose rows this run removed (deleted or moved away).
        parts_written: table part files this run wrote.
    """

    documents: int = 0
    segments: int = 0
    tables: Mapping[str, int] = field(default_factory=dict)
    failures: int = 0
    exports: int = 0
    exports_removed: int = 0
    recordings_rebuilt: int = 0
    recordings_removed: int = 0
    parts_written: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "segments": self.segments, **self.tables,
                "failures": self.failures, "recordings_rebuilt": self.recordings_rebuilt,
                "recordings_removed": self.recordings_removed, "exports": self.exports,
                "exports_removed": self.exports_removed, "parts_written": self.parts_written}
