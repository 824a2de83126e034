"""Embedding windows inside speech segments, and batches of windows across recordings.

Windows never cross a segment boundary: a segment is speech without a long pause, so a window never
spans the silence between two speakers' turns. Inside a segment, windows of ``window_samples``
start every ``hop_samples``; the last one is moved back to end at the segment end so that every
sample is covered; a segment shorter than a window gives one window of its own length.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import pyarrow as pa
from vadpack.core.types import Span
from vadpack.speakers.types import Window

SPAN_COLUMNS = ("content_id", "start_sample", "end_sample")


def window_bounds(start_sample: int, end_sample: int, window_samples: int,
                  hop_samples: int) -> list[tuple[int, int]]:
    """The [start, end) sample ranges of the windows of one segment, in time order.

    Args:
        start_sample: segment start.
        end_sample: segment end (exclusive).
        window_samples: window length.
        hop_samples: step between window starts.

    Returns:
        ``[]`` for an empty segment; one window of the segment's own length when it is not longer
        than a window; else windows of ``window_samples`` every ``hop_samples``, the last one
        ending exactly at ``end_sample``.
    """
    if window_samples <= 0 or hop_samples <= 0:
        raise ValueError(f"window ({window_samples}) and hop ({hop_samples}) must be positive sample counts")
    length = end_sample - start_sample
    if length <= 0:
        return []
    if length <= window_samples:
        return [(start_sample, end_sample)]
    starts = list(range(start_sample, end_sample - window_samples + 1, hop_samples))
    if starts[-1] + window_samples < end_sample:
        starts.append(end_sample - window_samples)
    return [(s, s + window_samples) for s in starts]


def spans_from_table(table: pa.Table) -> list[Span]:
    """The distinct speech segments of a segments table as spans, sorted by content and start.

    Two recordings with the same content have the same segments: they are labelled once.

    Raises:
        ValueError: a column is missing, or a segment has a negative length.
    """
    missing = [c for c in SPAN_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"the segments table lacks column(s) {', '.join(missing)}; it needs "
                         f"{', '.join(SPAN_COLUMNS)} (the vad stage's segments.parquet)")
    rows = set(zip(*(table[c].to_pylist() for c in SPAN_COLUMNS)))
    spans = sorted(Span(str(c), int(s), int(e)) for c, s, e in rows)
    bad = [s for s in spans if s.end_sample < s.start_sample or s.start_sample < 0]
    if bad:
        raise ValueError(f"a segment of content {bad[0].content_id} has samples "
                         f"[{bad[0].start_sample}, {bad[0].end_sample}); rerun the vad stage")
    return spans


def make_windows(spans: Sequence[Span], window_samples: int, hop_samples: int) -> list[Window]:
    """Every window of every segment, in the order of the segments (sorted by content and start).

    A window's ``segment_index`` is its segment's position among its content's segments.
    """
    windows: list[Window] = []
    for _, segs in groupby(spans, key=lambda sp: sp.content_id):
        for index, seg in enumerate(segs):
            windows += [Window(seg.content_id, index, s, e)
                        for s, e in window_bounds(seg.start_sample, seg.end_sample, window_samples, hop_samples)]
    return windows


def plan_batches(windows: Sequence[Window], batch_windows: int) -> list[tuple[Window, ...]]:
    """Batches of at most ``batch_windows`` windows across recordings, longest windows first.

    Sorting by length means nearly every batch holds windows of one length (all full windows but
    the few from short segments), so padding costs almost nothing; ties keep time order so the
    batches are the same on every run.
    """
    if batch_windows < 1:
        raise ValueError(f"batch_windows must be at least 1, got {batch_windows}")
    ordered = sorted(windows, key=lambda w: (-w.n_samples, w.content_id, w.start_sample))
    return [tuple(ordered[i: i + batch_windows]) for i in range(0, len(ordered), batch_windows)]


def content_groups(spans: Sequence[Span], windows_per_span: Sequence[int], group_windows: int) -> list[list[Span]]:
    """Consecutive groups of whole contents holding about ``group_windows`` windows each.

    ``spans`` are sorted by content; ``windows_per_span`` is each one's window count. A content with
    more windows than ``group_windows`` forms a group of its own.
    """
    groups: list[list[Span]] = []
    current: list[Span] = []
    count = 0
    for i, span in enumerate(spans):
        starts_content = i == 0 or span.content_id != spans[i - 1].content_id
        if starts_content and current and count >= group_windows:
            groups.append(current)
            current, count = [], 0
        current.append(span)
        count += windows_per_span[i]
    if current:
        groups.append(current)
    return groups
