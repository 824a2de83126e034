"""Windows inside segments and batches across recordings, with exact expected sample ranges."""

from __future__ import annotations

import pyarrow as pa
import pytest

from speakers.types import Segment, Window
from speakers.windows import make_windows, plan_batches, recording_groups, segments_from_table, window_bounds


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


def test_segments_table_is_checked_and_sorted() -> None:
    table = pa.table({"recording_id": ["b", "a", "a"], "segment_index": [0, 1, 0],
                      "start_sample": [0, 500, 0], "end_sample": [10, 600, 100]})
    assert segments_from_table(table) == [Segment("a", 0, 0, 100), Segment("a", 1, 500, 600), Segment("b", 0, 0, 10)]
    with pytest.raises(ValueError, match="end_sample"):
        segments_from_table(table.drop_columns(["end_sample"]))
    with pytest.raises(ValueError, match="rerun the vad stage"):
        segments_from_table(pa.table({"recording_id": ["a"], "segment_index": [0], "start_sample": [9],
                                      "end_sample": [3]}))


def test_batches_mix_recordings_longest_first_in_a_stable_order() -> None:
    segs = [Segment("a", 0, 0, 250), Segment("b", 0, 0, 60), Segment("b", 1, 1000, 1200)]
    windows = make_windows(segs, 100, 100)
    assert len(windows) == 3 + 1 + 2
    batches = plan_batches(windows, 4)
    assert [len(b) for b in batches] == [4, 2]
    assert batches[0] == (Window("a", 0, 0, 100), Window("a", 0, 100, 200), Window("a", 0, 150, 250),
                          Window("b", 1, 1000, 1100))
    assert batches[1] == (Window("b", 1, 1100, 1200), Window("b", 0, 0, 60))


def test_groups_never_split_a_recording() -> None:
    segs = [Segment("a", 0, 0, 1), Segment("a", 1, 2, 3), Segment("b", 0, 0, 1), Segment("c", 0, 0, 1)]
    groups = recording_groups(segs, [3, 3, 1, 5], group_windows=4)
    assert [[s.recording_id for s in g] for g in groups] == [["a", "a"], ["b", "c"]]
