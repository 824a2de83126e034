"""Windows inside segments and batches across recordings, with exact expected sample ranges."""

from __future__ import annotations

import pyarrow as pa
import pytest
from vadpack.core.types import Span
from vadpack.speakers.types import Window
from vadpack.speakers.windows import content_groups, make_windows, plan_batches, spans_from_table, window_bounds


def test_long_segment_windows_hop_and_the_last_one_ends_at_the_segment_end() -> None:
    # Invariant: every sample of the segment is inside a window, and no window leaves the segment.
    assert window_bounds(100, 100 + 250, 100, 75) == [(100, 200), (175, 275), (250, 350)]
    assert window_bounds(0, 400, 100, 100) == [(0, 100), (100, 200), (200, 300), (300, 400)]


def test_short_and_exact_segments_give_one_window_of_their_own_length() -> None:
    assert window_bounds(10, 60, 100, 50) == [(10, 60)]
    assert window_bounds(10, 110, 100, 50) == [(10, 110)]
    assert window_bounds(10, 111, 100, 50) == [(10, 110), (11, 111)]


def test_empty_segment_gives_no_window_and_bad_sizes_are_rejected() -> None:
    assert window_bounds(5, 5, 100, 50) == []
    with pytest.raises(ValueError, match="positive"):
        window_bounds(0, 10, 0, 5)


def test_segments_table_is_checked_sorted_and_one_content_is_labelled_once() -> None:
    # "a" and "a-copy" are two recordings of one content: its segments appear once.
    table = pa.table({"recording_id": ["b", "a", "a", "a-copy"], "segment_index": [0, 1, 0, 0],
                      "content_id": ["cb", "ca", "ca", "ca"], "start_sample": [0, 500, 0, 0],
                      "end_sample": [10, 600, 100, 100]})
    assert spans_from_table(table) == [Span("ca", 0, 100), Span("ca", 500, 600), Span("cb", 0, 10)]
    with pytest.raises(ValueError, match="end_sample"):
        spans_from_table(table.drop_columns(["end_sample"]))
    with pytest.raises(ValueError, match="rerun the vad stage"):
        spans_from_table(pa.table({"content_id": ["a"], "start_sample": [9], "end_sample": [3]}))


def test_batches_mix_recordings_longest_first_in_a_stable_order() -> None:
    segs = [Span("a", 0, 250), Span("b", 0, 60), Span("b", 1000, 1200)]
    windows = make_windows(segs, 100, 100)
    assert len(windows) == 3 + 1 + 2
    batches = plan_batches(windows, 4)
    assert [len(b) for b in batches] == [4, 2]
    # segment_index counts within each content: b's second segment is its index 1.
    assert batches[0] == (Window("a", 0, 0, 100), Window("a", 0, 100, 200), Window("a", 0, 150, 250),
                          Window("b", 1, 1000, 1100))
    assert batches[1] == (Window("b", 1, 1100, 1200), Window("b", 0, 0, 60))


def test_groups_never_split_a_content() -> None:
    segs = [Span("a", 0, 1), Span("a", 2, 3), Span("b", 0, 1), Span("c", 0, 1)]
    groups = content_groups(segs, [3, 3, 1, 5], group_windows=4)
    assert [[s.content_id for s in g] for g in groups] == [["a", "a"], ["b", "c"]]
