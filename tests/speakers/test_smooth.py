"""Label smoothing and spans inside a segment, with exact expected values."""

from __future__ import annotations

import numpy as np
import pytest
from vadpack.speakers.smooth import majority_filter, quietest_sample, segment_spans, trim_spans


def test_majority_filter_fixes_a_lone_window_and_keeps_real_runs() -> None:
    assert majority_filter([0, 0, 1, 0, 0], 3) == [0, 0, 0, 0, 0]
    assert majority_filter([0, 0, 1, 1, 0, 0], 3) == [0, 0, 1, 1, 0, 0]
    assert majority_filter([0, 1, 2], 3) == [0, 1, 2]  # no majority: unchanged
    assert majority_filter([1, 0], 3) == [1, 0]  # ends: a tie keeps the label
    assert majority_filter([0, 1, 0], 1) == [0, 1, 0]
    with pytest.raises(ValueError, match="odd"):
        majority_filter([0], 2)


def test_spans_tile_the_segment_and_merge_runs() -> None:
    spans = segment_spans(100, 1000, [200, 400, 600, 800], [0, 0, 1, 1])
    assert spans == [(100, 500, 0), (500, 1000, 1)]
    assert segment_spans(100, 1000, [550], [3]) == [(100, 1000, 3)]
    assert segment_spans(100, 1000, [], []) == []


def test_the_boundary_function_places_each_change_between_the_centres() -> None:
    spans = segment_spans(0, 100, [10, 30, 50, 70], [0, 1, 1, 0], boundary=lambda lo, hi: lo + 2)
    assert spans == [(0, 12, 0), (12, 52, 1), (52, 100, 0)]
    # Out-of-range answers are clamped to the centres.
    assert segment_spans(0, 100, [10, 30], [0, 1], boundary=lambda lo, hi: 999) == [(0, 30, 0), (30, 100, 1)]


def test_quietest_sample_finds_the_pause() -> None:
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(16_000) * 3000).astype(np.int16)
    pcm[9_000:11_000] = 0  # a 125 ms pause at 562-687 ms
    cut = quietest_sample(pcm, 4_000, 14_000)
    assert 9_000 <= cut <= 11_000
    assert quietest_sample(pcm, 100, 150) == 125  # shorter than a frame: the middle


def test_trim_spans_keeps_only_the_parts_inside_speech() -> None:
    spans = [(0, 100, 0), (100, 250, 1), (300, 400, 0)]
    speech = [(10, 50), (60, 120), (200, 260), (390, 500)]
    # span 0 -> [10, 50) and [60, 100); span 1 -> [100, 120) and [200, 250); span 2 -> [390, 400)
    assert trim_spans(spans, speech) == [(10, 50, 0), (60, 100, 0), (100, 120, 1), (200, 250, 1), (390, 400, 0)]
    assert trim_spans(spans, []) == []
    assert trim_spans(spans, [(0, 1000)]) == spans
    assert trim_spans([(0, 10, 0)], [(10, 20)]) == []  # touching is not inside: [start, end)
