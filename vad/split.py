"""Length cap and merging of speech segments, in 16 kHz sample offsets.

A segment longer than ``max_segment_s`` is cut at the longest pause inside it (the idea of silero's
``get_speech_timestamps``), and the two halves are cut again until every piece fits. Only when a
piece has no pause at all is it cut at its quietest 100 ms, so speech is never hard-cut while a
pause is available.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from vadpack.core.cache import SAMPLE_RATE
from vadpack.vad.types import FrameTrack

QUIET_WINDOW_S = 0.1


class CutFinder:
    """Finds where to cut a too-long segment of one recording.

    Args:
        track: the recording's frames; its non-speech frames are the pauses.
    """

    def __init__(self, track: FrameTrack) -> None:
        f, n = track.frame_samples, track.n_samples
        edges = np.diff(np.concatenate([[0], (~np.asarray(track.speech, dtype=bool)).astype(np.int8), [0]]))
        self.pause_starts = np.flatnonzero(edges == 1).astype(np.int64) * f
        self.pause_ends = np.minimum(np.flatnonzero(edges == -1).astype(np.int64) * f, n)
        self.frame_samples = f
        self._window = max(1, round(QUIET_WINDOW_S * SAMPLE_RATE / f))
        # Mean power per 100 ms window starting at each frame; a cumulative sum makes any range O(1).
        power = np.power(10.0, np.asarray(track.energy_db, dtype=np.float64) / 10.0)
        self._power_cumsum = np.concatenate([[0.0], np.cumsum(power)])

    def cut_point(self, start: int, end: int) -> int:
        """A sample offset strictly inside ``(start, end)``: the middle of the longest pause inside,
        else the middle of the quietest 100 ms."""
        first = int(np.searchsorted(self.pause_starts, start, side="right"))
        last = int(np.searchsorted(self.pause_ends, end, side="left"))
        if last > first:
            starts, ends = self.pause_starts[first:last], self.pause_ends[first:last]
            middles = (starts + ends) // 2
            # Longest pause; among equals, the one nearest the middle keeps the pieces balanced.
            order = np.lexsort((np.abs(2 * middles - (start + end)), -(ends - starts)))
            return int(middles[order[0]])
        return self._quietest_point(start, end)

    def _quietest_point(self, start: int, end: int) -> int:
        f, w = self.frame_samples, self._window
        first = -(-start // f)
        last = min(end // f, len(self._power_cumsum) - 1) - w  # last window start that fits inside
        if last < first:
            return (start + end) // 2
        window_power = self._power_cumsum[first + w: last + w + 1] - self._power_cumsum[first: last + 1]
        best = first + int(np.argmin(window_power))
        return min(max(best * f + w * f // 2, start + 1), end - 1)


def cap_length(regions: Iterable, track: FrameTrack, max_samples: int) -> list[tuple[int, int]]:
    """Split every region longer than ``max_samples`` until each piece is at most that long.

    Args:
        regions: ``[start, end)`` sample pairs, sorted and non-overlapping.
        track: the recording's frames, where the pauses are found.
        max_samples: the longest piece allowed.

    Returns:
        The pieces in time order; consecutive pieces of one region touch, so no audio is lost.
    """
    finder = CutFinder(track)
    pieces: list[tuple[int, int]] = []
    for start, end in regions:
        stack = [(int(start), int(end))]
        while stack:
            a, b = stack.pop()
            if b - a <= max_samples:
                pieces.append((a, b))
                continue
            cut = finder.cut_point(a, b)
            stack += [(cut, b), (a, cut)]  # the left piece is popped, and emitted, first
    return pieces


def merge_short(pieces: Iterable[tuple[int, int]], limit_samples: int) -> list[tuple[int, int]]:
    """Join neighbouring segments while the joined span (gaps included) is at most ``limit_samples``."""
    merged: list[tuple[int, int]] = []
    for start, end in pieces:
        if merged and end - merged[-1][0] <= limit_samples:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
