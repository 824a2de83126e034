"""Frame flags -> speech segments: hysteresis, padding, length cap and merging.

The pipeline for one recording, all in 16 kHz sample offsets once frames are left behind:

1. :class:`SpeechStateMachine` turns per-frame speech flags into regions (frame indices).
2. :func:`pad_regions` widens each region by ``pad_s`` without crossing a neighbour or the file ends.
3. :func:`vad.split.cap_length` splits regions longer than ``max_segment_s`` at their quietest pause.
4. :func:`vad.split.merge_short` optionally joins neighbours up to ``merge_up_to_s``.
"""

from __future__ import annotations

import math

import numpy as np
from vadpack.core.cache import SAMPLE_RATE
from vadpack.vad.config import VadConfig
from vadpack.vad.split import cap_length, merge_short
from vadpack.vad.types import FrameTrack


class SpeechStateMachine:
    """Speech flags -> speech regions, with onset and offset hysteresis.

    It has the two states of py-webrtcvad's ``example.py``:

    - NOTTRIGGERED (outside speech): the first speech frame opens a candidate region.
    - TRIGGERED (inside speech): non-speech frames are held back, as the example's ring buffer does.
      Only ``min_silence_frames`` of them in a row end the region, at its last speech frame, so
      shorter gaps (breaths, stops) are bridged. This is the offset hysteresis.

    A region that closes shorter than ``min_speech_frames`` was a click or a cough and is dropped: the
    onset hysteresis. Unlike the example it returns frame indices rather than audio, and it closes the
    region still open at the end of the input instead of dropping it.

    Running the two states frame by frame in Python would cost more than webrtcvad itself, so
    :meth:`regions` computes the same result on run lengths with numpy.
    """

    def __init__(self, min_speech_frames: int, min_silence_frames: int) -> None:
        self.min_speech_frames = max(1, int(min_speech_frames))
        self.min_silence_frames = max(1, int(min_silence_frames))

    def regions(self, speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Regions ``[starts[i], ends[i])`` in frame indices, sorted and separated by real pauses."""
        starts, ends = speech_runs(speech)
        if not len(starts):
            return starts, ends
        # TRIGGERED -> NOTTRIGGERED only across a gap of at least min_silence_frames.
        closes = (starts[1:] - ends[:-1]) >= self.min_silence_frames
        starts = np.concatenate([starts[:1], starts[1:][closes]])
        ends = np.concatenate([ends[:-1][closes], ends[-1:]])
        long_enough = (ends - starts) >= self.min_speech_frames
        return starts[long_enough], ends[long_enough]


def speech_runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of True in ``flags`` as ``(starts, ends)`` index arrays (ends exclusive)."""
    edges = np.diff(np.concatenate([[0], np.asarray(flags, dtype=np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def pad_regions(starts: np.ndarray, ends: np.ndarray, pad: int, n_samples: int) -> np.ndarray:
    """Widen sample regions by ``pad`` on both sides, within ``[0, n_samples]``.

    Where two regions are closer than ``2 * pad`` each gets half of the gap, so padded regions never
    overlap.

    Returns:
        An ``(n, 2)`` int64 array of ``[start, end)`` sample offsets.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.minimum(np.asarray(ends, dtype=np.int64), n_samples)
    half_gaps = (starts[1:] - ends[:-1]) // 2
    before = np.minimum(pad, np.concatenate([starts[:1], half_gaps]))
    after = np.minimum(pad, np.concatenate([half_gaps, n_samples - ends[-1:]]))
    return np.stack([starts - before, ends + after], axis=1)


def frames_for(seconds: float, frame_samples: int) -> int:
    """The number of whole frames that ``seconds`` spans (rounded up, tolerant of float noise)."""
    return math.ceil(seconds * SAMPLE_RATE / frame_samples - 1e-9)


def segments_from_track(track: FrameTrack, cfg: VadConfig) -> list[tuple[int, int]]:
    """Speech segments ``[(start_sample, end_sample), ...]`` of one recording from its frame flags.

    The flags are used as they are: gating (see :mod:`vad.gates`) happens before this step.

    Returns:
        Segments sorted, non-overlapping, inside ``[0, track.n_samples]`` and each at most
        ``cfg.max_segment_s`` long.
    """
    machine = SpeechStateMachine(
        frames_for(cfg.min_speech_s, track.frame_samples), frames_for(cfg.min_silence_s, track.frame_samples)
    )
    starts, ends = machine.regions(track.speech)
    if not len(starts):
        return []
    regions = pad_regions(starts * track.frame_samples, ends * track.frame_samples,
                          round(cfg.pad_s * SAMPLE_RATE), track.n_samples)
    regions = regions[regions[:, 1] > regions[:, 0]]
    max_samples = int(cfg.max_segment_s * SAMPLE_RATE)
    pieces = cap_length(regions, track, max_samples)
    if cfg.merge_up_to_s > 0:
        pieces = merge_short(pieces, int(cfg.merge_up_to_s * SAMPLE_RATE))
    return [(int(a), int(b)) for a, b in pieces]
