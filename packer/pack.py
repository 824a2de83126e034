"""Pack the speech segments of a whole archive into length-homogeneous batches.

The items are spans keyed by content (``content_id``, ``start_sample``, ``end_sample``): what asr
decodes and what the transcript store keys results by. All of them are sorted by length, longest
first, across files. A batch is then filled greedily
from the front: its first item is its longest, so the number of items that fit is known from that
one item, and the loop steps over batches, never over items. Everything else is numpy and pyarrow
column work, so a million segments pack in about a second.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.tables import BATCHES
from vadpack.packer.budget import is_auto
from vadpack.packer.config import PackerConfig
from vadpack.packer.cost import budget_frames_for, feature_frames, items_that_fit
from vadpack.packer.types import PackResult, PackStats

REQUIRED_COLUMNS = {"content_id": pa.string(), "start_sample": pa.int64(), "end_sample": pa.int64()}
MAX_LISTED_WARNINGS = 20  # beyond this, one summary line: the batches table itself lists every segment


def pack_segments(segments: pa.Table, cfg: PackerConfig, budget_s: float | None = None,
                  first_batch_id: int = 0) -> PackResult:
    """Pack ``segments`` (spans of any number of recordings) into batches.

    Segments are sorted by length, longest first, ties broken by ``content_id`` then
    ``start_sample``; batches are filled greedily under the budget and never cross a bucket edge.
    No batch costs more than the budget or holds more than ``cfg.max_items``, except that a segment
    that alone is over the budget gets a batch of its own and a warning. No segment is dropped.

    Args:
        segments: table with at least content_id, start_sample, end_sample (one row per span).
        cfg: the packer options.
        budget_s: padded seconds per batch; overrides ``cfg.budget_s`` (required when that is ``auto``,
            see ``packer.budget.resolve_budget_s``).
        first_batch_id: the id of the first batch; the others follow in order (a store that already
            holds batches starts past them, so a batch id names one batch for good).

    Returns:
        The batches (``BATCHES`` schema, longest first; ``batch_id`` is ``first_batch_id`` plus the
        row number), warnings and stats. The same segments and config always give the same table,
        byte for byte.

    Raises:
        ValueError: on a missing column, a null, a segment that ends before it starts, or no budget.
    """
    budget_s = _given_budget_s(cfg, budget_s)
    budget_frames = budget_frames_for(budget_s)
    segs, n_samples = _checked_segments(segments)
    order = _length_order(segs, n_samples)
    n_sorted = n_samples[order]
    frames = feature_frames(n_sorted)
    fit = items_that_fit(frames, budget_frames, cfg.max_items, cfg.quadratic_q)
    breaks = _bucket_breaks(n_sorted, cfg.buckets)
    starts = batch_starts(np.maximum(fit, 1), breaks)
    sorted_segs = segs.take(order)
    batches = _batches_table(sorted_segs, frames, starts, first_batch_id)
    over = np.flatnonzero(fit == 0)
    warnings = _warnings(sorted_segs, n_sorted, over, budget_s)
    stats = PackStats(n_segments=len(frames), n_batches=len(starts), real_frames=int(frames.sum()),
                      padded_frames=int(pc.sum(batches["padded_frames"]).as_py() or 0),
                      budget_s=budget_s, budget_frames=budget_frames, n_over_budget=len(over))
    return PackResult(batches=batches, warnings=tuple(warnings), stats=stats)


def batch_starts(fit: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    """Start index of every batch, filling greedily from the front.

    Args:
        fit: for each sorted position, how many items a batch starting there may hold (>= 1).
        breaks: sorted positions where a new bucket starts (a batch never spans one).

    Returns:
        int64 array of batch start positions, increasing.
    """
    n = len(fit)
    bounds = np.append(breaks, n).astype(np.int64)
    # For each position, the first bucket edge after it: a batch starting there must end by then.
    bucket_end = bounds[np.searchsorted(bounds, np.arange(n), side="right")].tolist()
    fit_list = fit.tolist()  # plain ints: indexing a list is several times faster than a numpy array
    starts = []
    i = 0
    while i < n:
        starts.append(i)
        i = min(i + fit_list[i], bucket_end[i])
    return np.asarray(starts, dtype=np.int64)


def _given_budget_s(cfg: PackerConfig, budget_s: float | None) -> float:
    if budget_s is not None:
        return float(budget_s)
    if is_auto(cfg):
        raise ValueError("packer.budget_s is 'auto': resolve it with packer.budget.resolve_budget_s "
                         "and pass budget_s=..., or set packer.budget_s to a number of seconds")
    return float(cfg.budget_s)


def _checked_segments(segments: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The required columns with their exact types, and each segment's length in samples."""
    missing = [name for name in REQUIRED_COLUMNS if name not in segments.column_names]
    if missing:
        raise ValueError(f"segments table lacks column(s) {', '.join(missing)}; "
                         f"it needs {', '.join(REQUIRED_COLUMNS)} (spans of the vad stage's segments)")
    segs = segments.select(list(REQUIRED_COLUMNS)).cast(pa.schema(REQUIRED_COLUMNS)).combine_chunks()
    for name in REQUIRED_COLUMNS:
        if segs[name].null_count:
            raise ValueError(f"segments column {name} has {segs[name].null_count} null value(s); "
                             f"rerun the vad stage")
    n_samples = segs["end_sample"].to_numpy() - segs["start_sample"].to_numpy()
    bad = np.flatnonzero(n_samples < 0)
    if len(bad):
        row = segs.slice(int(bad[0]), 1).to_pylist()[0]
        raise ValueError(f"{len(bad)} segment(s) end before they start, e.g. {row}; rerun the vad stage")
    return segs, n_samples


def _length_order(segs: pa.Table, n_samples: np.ndarray) -> np.ndarray:
    """Row order: longest first, then content_id and start_sample ascending (a total order)."""
    keyed = pa.table({"n": n_samples, "r": segs["content_id"], "i": segs["start_sample"]})
    keys = [("n", "descending"), ("r", "ascending"), ("i", "ascending")]
    return pc.sort_indices(keyed, sort_keys=keys).to_numpy()


def _bucket_breaks(n_sorted: np.ndarray, buckets: tuple[float, ...] | None) -> np.ndarray:
    """Sorted positions where the duration bucket changes; lengths are sorted, so buckets are runs."""
    if not buckets or len(n_sorted) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.round(np.asarray(buckets, dtype=np.float64) * SAMPLE_RATE).astype(np.int64)
    bucket = np.searchsorted(edges, n_sorted, side="right")
    return np.flatnonzero(np.diff(bucket)) + 1


def _batches_table(sorted_segs: pa.Table, frames: np.ndarray, starts: np.ndarray, first_id: int) -> pa.Table:
    """The BATCHES table, built column-wise from offsets (no Python object per row)."""
    offsets = pa.array(np.append(starts, len(frames)), pa.int32())
    n_items = np.diff(offsets.to_numpy()).astype(np.int64)
    max_frames = frames[starts]
    real = np.add.reduceat(frames, starts) if len(starts) else np.zeros(0, np.int64)
    return pa.table({
        "batch_id": pa.array(np.arange(len(starts)) + first_id, pa.int32()),
        "content_ids": pa.ListArray.from_arrays(offsets, sorted_segs["content_id"].combine_chunks()),
        "start_samples": pa.ListArray.from_arrays(offsets, sorted_segs["start_sample"].combine_chunks()),
        "end_samples": pa.ListArray.from_arrays(offsets, sorted_segs["end_sample"].combine_chunks()),
        "n_items": pa.array(n_items, pa.int32()),
        "max_frames": pa.array(max_frames, pa.int32()),
        "real_frames": pa.array(real, pa.int64()),
        "padded_frames": pa.array(n_items * max_frames, pa.int64()),
    }, schema=BATCHES)


def _warnings(sorted_segs: pa.Table, n_sorted: np.ndarray, over: np.ndarray, budget_s: float) -> list[str]:
    """Messages for segments over the budget and for segments too short for the frontend."""
    rows = sorted_segs.take(pa.array(over[:MAX_LISTED_WARNINGS])).to_pylist() if len(over) else []
    out = [f"segment {r['content_id']}@{r['start_sample'] / SAMPLE_RATE:.2f}s ({n / SAMPLE_RATE:.2f} s) alone "
           f"costs more than packer.budget_s={budget_s:g} padded seconds; it gets a batch of its own (raise "
           f"packer.budget_s or lower the vad maximum segment length)"
           for r, n in zip(rows, n_sorted[over[:len(rows)]])]
    if len(over) > len(rows):
        out.append(f"... and {len(over) - len(rows)} more segments over packer.budget_s={budget_s:g}, "
                   f"each in a batch of its own")
    n_empty = int(np.count_nonzero(n_sorted < 2))
    if n_empty:
        out.append(f"{n_empty} segment(s) have fewer than 2 samples (0 feature frames); FunASR's frontend "
                   f"cannot decode them, so expect them as asr failures")
    return out
