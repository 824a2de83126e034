"""Packing: invariants over random archives, the reference greedy rule, determinism and buckets."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vadpack.core.tables import BATCHES
from vadpack.packer.config import PackerConfig
from vadpack.packer.cost import CostModel, batch_cost, budget_frames_for, feature_frames
from vadpack.packer.pack import pack_segments

SR = 16_000


def make_segments(lengths: list[int], n_recordings: int = 3) -> pa.Table:
    """Spans of the given lengths (samples), dealt round-robin over recordings, 30 s apart."""
    rec = [f"rec-{k % n_recordings}" for k in range(len(lengths))]
    start = np.asarray([k // n_recordings for k in range(len(lengths))], dtype=np.int64) * 30 * SR
    return pa.table({"content_id": pa.array(rec, pa.string()),
                     "start_sample": start, "end_sample": start + np.asarray(lengths, dtype=np.int64)})


def items_of(batches: pa.Table) -> list[list[tuple[str, int]]]:
    """Each batch's items as (content_id, start_sample), which identifies a span here."""
    return [list(zip(r, i)) for r, i in zip(batches["content_ids"].to_pylist(),
                                            batches["start_samples"].to_pylist())]


def reference_pack(segments: pa.Table, cfg: PackerConfig) -> list[list[tuple[str, int]]]:
    """The rule spelled out item by item with CostModel: sort, then add until exceeded."""
    rows = segments.to_pylist()
    rows.sort(key=lambda r: (-(r["end_sample"] - r["start_sample"]), r["content_id"], r["start_sample"]))
    edges = [round(b * SR) for b in cfg.buckets or ()]
    rule = CostModel(budget_frames_for(float(cfg.budget_s)), cfg.max_items, cfg.quadratic_q)
    batches: list[list[tuple[str, int]]] = []
    bucket = None
    for r in rows:
        n = r["end_sample"] - r["start_sample"]
        this_bucket = sum(n >= e for e in edges)
        rule.add(int(feature_frames(n)))
        if batches and this_bucket == bucket and not rule.exceeded():
            batches[-1].append((r["content_id"], r["start_sample"]))
            continue
        rule.reset()
        rule.add(int(feature_frames(n)))
        batches.append([(r["content_id"], r["start_sample"])])
        bucket = this_bucket
    return batches


lengths_st = st.lists(st.one_of(st.integers(0, 2_000), st.integers(2_000, 30 * SR), st.just(30 * SR)),
                      min_size=0, max_size=300)
config_st = st.builds(
    PackerConfig,
    budget_s=st.sampled_from([1.0, 7.5, 30.0, 60.0, 300.0]),
    max_items=st.integers(1, 40),
    quadratic_q=st.one_of(st.none(), st.sampled_from([5.0, 30.0])),
    buckets=st.one_of(st.none(), st.sampled_from([(2.0,), (1.0, 5.0, 15.0)])),
)


@settings(max_examples=150, deadline=None)
@given(lengths=lengths_st, cfg=config_st)
def test_pack_invariants(lengths, cfg):
    segments = make_segments(lengths)
    result = pack_segments(segments, cfg)
    batches = result.batches
    assert batches.schema.equals(BATCHES)
    budget = budget_frames_for(cfg.budget_s)
    n_items = batches["n_items"].to_numpy()
    max_frames = batches["max_frames"].to_numpy()
    cost = batch_cost(n_items, max_frames, cfg.quadratic_q)
    # Invariant: within budget and max_items, except a lone over-budget segment, which is warned about.
    over = cost > budget
    assert np.all(n_items[over] == 1)
    assert over.sum() == result.stats.n_over_budget
    assert np.all(n_items <= cfg.max_items) and np.all(n_items >= 1)
    if over.any():
        assert any("alone costs more than packer.budget_s" in w for w in result.warnings)
    # Invariant: every segment in exactly one batch.
    flat = [item for batch in items_of(batches) for item in batch]
    assert sorted(flat) == sorted(zip(segments["content_id"].to_pylist(), segments["start_sample"].to_pylist()))
    # Invariant: batches longest first; batch ids are row numbers.
    assert np.all(np.diff(max_frames) <= 0)
    assert batches["batch_id"].to_pylist() == list(range(batches.num_rows))  # first_batch_id defaults to 0
    # The recorded frames agree with the items.
    frames = dict(zip(flat, feature_frames(np.asarray(lengths, dtype=np.int64)[_positions(segments, flat)])))
    for batch, mf, real in zip(items_of(batches), max_frames, batches["real_frames"].to_pylist()):
        assert mf == max(frames[i] for i in batch) and real == sum(frames[i] for i in batch)
    assert items_of(batches) == reference_pack(segments, cfg)


def _positions(segments: pa.Table, items: list[tuple[str, int]]) -> np.ndarray:
    where = {k: n for n, k in enumerate(zip(segments["content_id"].to_pylist(),
                                            segments["start_sample"].to_pylist()))}
    return np.asarray([where[i] for i in items], dtype=np.int64)


@settings(max_examples=50, deadline=None)
@given(lengths=lengths_st, cfg=config_st, seed=st.integers(0, 2**32 - 1))
def test_deterministic_and_order_free(lengths, cfg, seed):
    """Invariant: same segments, in any row order, give a byte-identical batches file."""
    segments = make_segments(lengths)
    shuffled = segments.take(pa.array(np.random.default_rng(seed).permutation(segments.num_rows)))
    assert _parquet_bytes(pack_segments(segments, cfg).batches) == _parquet_bytes(pack_segments(segments, cfg).batches)
    assert _parquet_bytes(pack_segments(shuffled, cfg).batches) == _parquet_bytes(pack_segments(segments, cfg).batches)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def test_greedy_fill_exact_batches():
    # Budget 60 s = 1000 frames. 30 s items (500 frames): 2 per batch; 10 s items (167 frames): 5 per
    # batch. The fifth 30 s item leads a batch that a 10 s item fills up: 2 x 500 is still in budget.
    segments = make_segments([30 * SR] * 5 + [10 * SR] * 7, n_recordings=1)
    batches = pack_segments(segments, PackerConfig(budget_s=60)).batches
    assert batches["n_items"].to_pylist() == [2, 2, 2, 5, 1]
    assert batches["max_frames"].to_pylist() == [500, 500, 500, 167, 167]
    assert batches["real_frames"].to_pylist() == [1000, 1000, 667, 835, 167]
    assert batches["padded_frames"].to_pylist() == [1000, 1000, 1000, 835, 167]


def test_tie_break_by_content_then_start():
    segments = pa.table({"content_id": ["b", "a", "b", "a"], "start_sample": [0, 5 * SR, 5 * SR, 0],
                         "end_sample": [SR, 6 * SR, 6 * SR, SR]})
    batches = pack_segments(segments, PackerConfig(budget_s=60)).batches
    assert items_of(batches) == [[("a", 0), ("a", 5 * SR), ("b", 0), ("b", 5 * SR)]]


def test_batch_ids_start_where_asked():
    batches = pack_segments(make_segments([30 * SR] * 4), PackerConfig(budget_s=60), first_batch_id=17).batches
    assert batches["batch_id"].to_pylist() == [17, 18]


def test_over_budget_segment_alone_with_warning():
    segments = make_segments([30 * SR, 30 * SR, SR], n_recordings=1)
    result = pack_segments(segments, PackerConfig(budget_s=20))
    assert result.batches["n_items"].to_pylist() == [1, 1, 1]  # 1 s item: 17 frames, fits 20 per batch
    assert result.stats.n_over_budget == 2
    assert len(result.warnings) == 2 and "rec-0@0.00s" in result.warnings[0]


def test_many_over_budget_warnings_are_summarised():
    result = pack_segments(make_segments([30 * SR] * 50, n_recordings=1), PackerConfig(budget_s=10))
    assert result.batches.num_rows == 50
    assert len(result.warnings) == 21 and result.warnings[-1].startswith("... and 30 more")


def test_quadratic_term_shrinks_long_batches_only():
    lengths = [30 * SR] * 20 + [SR] * 20
    linear = pack_segments(make_segments(lengths), PackerConfig(budget_s=300)).batches
    quad = pack_segments(make_segments(lengths), PackerConfig(budget_s=300, quadratic_q=30.0)).batches
    # 30 s items: 10 per batch linear, 5 with the attention term (each costs 2 x 30 s).
    assert linear["n_items"].to_pylist()[:2] == [10, 10]
    assert quad["n_items"].to_pylist()[:4] == [5, 5, 5, 5]
    # 1 s items barely pay the term (17 frames * (1 + 17/500)): all 20 still fit one batch.
    assert linear["n_items"].to_pylist()[-1] == quad["n_items"].to_pylist()[-1] == 20


def test_buckets_never_mix_ranges():
    lengths = [12 * SR, 6 * SR, 4 * SR, 2 * SR]  # all four fit one 300 s batch without buckets
    assert pack_segments(make_segments(lengths), PackerConfig(budget_s=300)).batches.num_rows == 1
    batches = pack_segments(make_segments(lengths), PackerConfig(budget_s=300, buckets=(5.0, 10.0))).batches
    assert batches["n_items"].to_pylist() == [1, 1, 2]
    assert batches["max_frames"].to_pylist() == [200, 100, 67]


def test_stats_and_empty_input():
    result = pack_segments(make_segments([]), PackerConfig(budget_s=300))
    assert result.batches.num_rows == 0 and result.batches.schema.equals(BATCHES)
    assert result.stats.efficiency == 1.0 and result.stats.n_batches == 0
    result = pack_segments(make_segments([10 * SR, 5 * SR]), PackerConfig(budget_s=300))
    assert result.stats.real_frames == 167 + 83 and result.stats.padded_frames == 2 * 167
    assert result.stats.efficiency == pytest.approx(250 / 334)


def test_budget_argument_overrides_and_auto_needs_it():
    segments = make_segments([30 * SR] * 4)
    assert pack_segments(segments, PackerConfig(budget_s=300), budget_s=60).batches.num_rows == 2
    with pytest.raises(ValueError, match="resolve_budget_s"):
        pack_segments(segments, PackerConfig(budget_s="auto"))
    assert pack_segments(segments, PackerConfig(budget_s="auto"), budget_s=120).batches.num_rows == 1


def test_bad_input_is_rejected_with_a_reason():
    with pytest.raises(ValueError, match="lacks column"):
        pack_segments(pa.table({"content_id": ["a"]}), PackerConfig(budget_s=300))
    bad = make_segments([SR]).set_column(2, "end_sample", pa.array([-1], pa.int64()))
    with pytest.raises(ValueError, match="end before they start"):
        pack_segments(bad, PackerConfig(budget_s=300))


def test_too_short_segments_are_kept_and_warned():
    result = pack_segments(make_segments([0, 1, SR]), PackerConfig(budget_s=300))
    assert sum(result.batches["n_items"].to_pylist()) == 3
    assert any("fewer than 2 samples" in w for w in result.warnings)


@pytest.mark.parametrize("kwargs, match", [
    ({"budget_s": "big"}, "budget_s"), ({"max_items": 2.5}, "max_items"), ({"max_items": 0}, "max_items"),
    ({"buckets": (10.0, 5.0)}, "strictly increasing"), ({"buckets": (-1.0,)}, "buckets"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PackerConfig(**kwargs)
