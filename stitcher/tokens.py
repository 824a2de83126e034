"""Absolute token times, computed column-wise.

The model reports token times relative to its segment, and they can start below 0 or end past the
segment. Here they become absolute (segment start + offset), are clamped to the segment, and are made
monotonic non-decreasing within each segment (segments never overlap, so the whole recording is
then monotonic too).
"""

from __future__ import annotations

import numpy as np

_US = 1_000_000
# Per-segment offset for a segmented running maximum in integer microseconds: 2**40 us is 12.7 days,
# longer than any segment, and 2**22 segments fit in an int64 with room to spare.
_SEG_STRIDE = np.int64(1) << 40


def absolute_token_times(seg_start_s: np.ndarray, seg_end_s: np.ndarray, rel_start_ms: np.ndarray,
                         rel_end_ms: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute (start_s, end_s) of each token.

    Args:
        seg_start_s: per token, the start of its segment in seconds.
        seg_end_s: per token, the end of its segment in seconds.
        rel_start_ms: per token, start relative to its segment, in ms.
        rel_end_ms: per token, end relative to its segment, in ms.
        counts: tokens per segment, in the order the tokens are laid out.
    """
    lo = np.round(np.asarray(seg_start_s, dtype=np.float64) * _US).astype(np.int64)
    hi = np.round(np.asarray(seg_end_s, dtype=np.float64) * _US).astype(np.int64)
    start = np.clip(lo + np.asarray(rel_start_ms, dtype=np.int64) * 1000, lo, hi)
    end = np.clip(lo + np.asarray(rel_end_ms, dtype=np.int64) * 1000, lo, hi)
    start = _segmented_cummax(start, counts)
    end = _segmented_cummax(np.maximum(end, start), counts)
    return start / _US, end / _US


def _segmented_cummax(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A running maximum that restarts at each segment boundary (values are non-negative microseconds)."""
    if values.size == 0:
        return values
    seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    shifted = values + seg * _SEG_STRIDE
    return np.maximum.accumulate(shifted) - seg * _SEG_STRIDE
