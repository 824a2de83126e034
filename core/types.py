"""Data types every stage shares: recordings, segments, and what decoding found."""

from __future__ import annotations

from dataclasses import dataclass

from vadpack.core.cache import SAMPLE_RATE


class SampleRange:
    """What a stretch of samples [start_sample, end_sample) at 16 kHz knows of itself (mixed into the
    frozen dataclasses that have those two fields: ``Segment``, ``Span``, ``speakers.types.Window``)."""

    __slots__ = ()
    start_sample: int
    end_sample: int

    @property
    def n_samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def duration_ms(self) -> int:
        """Length in whole milliseconds, the upper bound of token times."""
        return self.n_samples * 1000 // SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Segment(SampleRange):
    """A speech segment of one recording: samples [start_sample, end_sample) at 16 kHz.

    The one segment type of the house: the vad stage cuts them, the packer batches them, asr and
    speakers read their audio, the stitcher places their results in time.

    Attributes:
        recording_id: the recording's stable id.
        segment_index: position of the segment in its recording.
        start_sample: first sample, at 16 kHz.
        end_sample: one past the last sample.
    """

    recording_id: str
    segment_index: int
    start_sample: int
    end_sample: int


@dataclass(frozen=True, slots=True, order=True)
class Span(SampleRange):
    """A stretch of audio keyed by content: samples [start_sample, end_sample) of the recording whose
    bytes hash to ``content_id``, at 16 kHz.

    What asr (and speakers) decode and what the stores key results by. A segment of a renamed,
    moved or duplicated file is the same span, so its result is reused, never decoded again.
    """

    content_id: str
    start_sample: int
    end_sample: int


@dataclass(frozen=True, slots=True)
class RecordingRef:
    """A recording the scan stage accepted: its stable id, its path on disk and its content id.

    The PCM cache is keyed by ``content_id``, so a renamed or moved file is never decoded again.
    """

    recording_id: str
    path: str
    content_id: str


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
