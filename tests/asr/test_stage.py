"""The asr stage: part files in a store, resume, OOM halving and feature-worker failures end to end."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from vadpack.asr.config import AsrConfig
from vadpack.asr.stage import run_asr
from vadpack.core.tables import BATCHES, TRANSCRIPTS, read_table, to_table
from vadpack.core.types import Span

from tests.asr.conftest import Archive, pack

BUDGET_S = 45


@pytest.fixture(scope="module")
def batches(archive: Archive) -> pa.Table:
    return pack(archive.spans(), BUDGET_S)


@pytest.fixture(scope="module")
def baseline(tiny_model: Path, archive: Archive, batches: pa.Table, tmp_path_factory) -> Path:
    cfg = AsrConfig(model=str(tiny_model), device="cpu", threads=2, feature_workers=0, batches_per_part=2)
    parts = tmp_path_factory.mktemp("baseline") / "store"
    run_asr(batches, archive.cache_dir, parts, cfg, progress=False)
    return parts


def rows(parts: Path) -> list[dict]:
    table = read_table(parts, TRANSCRIPTS)
    return sorted(table.to_pylist(), key=lambda r: (r["content_id"], r["start_sample"], r["end_sample"]))


def span_of(row: dict) -> Span:
    return Span(row["content_id"], row["start_sample"], row["end_sample"])


def test_one_row_per_segment_in_part_files(baseline: Path, archive: Archive, batches: pa.Table) -> None:
    names = sorted(p.name for p in baseline.glob("*.parquet"))
    ids = sorted(batches["batch_id"].to_pylist())
    assert names == [f"part-{i:08d}.parquet" for i in range(len(ids[::2]))]  # numbered in order of writing
    table = read_table(baseline, TRANSCRIPTS)
    assert table.schema.equals(TRANSCRIPTS)
    got = rows(baseline)
    # Invariant: every span of every batch is exactly one row, none lost, none doubled.
    assert [span_of(r) for r in got] == sorted(archive.spans().values())
    assert all(r["status"] == "ok" and r["error"] is None for r in got)
    assert sum(len(r["tokens"]) for r in got) > 5 * len(got)


def test_paraformer_rows_tell_no_language(baseline: Path) -> None:
    # Paraformer does not tell language, emotion or event: null, not a guess; the part says its family.
    assert {(r["language"], r["emotion"], r["event"]) for r in rows(baseline)} == {(None, None, None)}
    meta = pq.read_schema(next(baseline.glob("*.parquet"))).metadata
    assert meta[b"family"] == b"paraformer" and meta[b"model_class"] == b"Paraformer"


def test_rerun_decodes_only_what_the_store_lacks(baseline: Path, cpu_cfg: AsrConfig, archive: Archive,
                                                 batches: pa.Table, tmp_path: Path) -> None:
    parts = tmp_path / "store"
    shutil.copytree(baseline, parts)
    victim = sorted(parts.glob("*.parquet"))[1]
    lost = read_table(victim, TRANSCRIPTS).num_rows
    victim.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    summary = run_asr(batches, archive.cache_dir, parts, cpu_cfg, progress=False)
    assert summary.parts_written == 1 and summary.segments == lost
    assert summary.already_stored == len(archive.keys) - lost
    assert {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet") if p.name in before} == before
    assert len(list(parts.glob("*.parquet"))) == len(before) + 1 and rows(parts) == rows(baseline)
    # A rerun with every span stored does nothing, not even load the model.
    again = run_asr(batches, archive.cache_dir, parts, cpu_cfg, progress=False)
    assert again.batches == 0 and again.already_stored == len(archive.keys)


def test_injected_oom_splits_and_gives_identical_results(
        monkeypatch: pytest.MonkeyPatch, baseline: Path, cpu_cfg: AsrConfig, archive: Archive,
        batches: pa.Table, tmp_path: Path) -> None:
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=1")
    summary = run_asr(batches, archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    assert summary.oom_splits > 0 and summary.failed_segments == 0
    assert rows(tmp_path) == rows(baseline)


def test_feature_failure_is_retried_inline(monkeypatch: pytest.MonkeyPatch, baseline: Path,
                                           cpu_cfg: AsrConfig, archive: Archive, batches: pa.Table,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("VADPACK_FAULTS", f"feature_worker={batches['batch_id'][0].as_py()}")
    summary = run_asr(batches, archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    assert summary.failed_segments == 0 and summary.feature_retries == 1
    assert rows(tmp_path) == rows(baseline)


def test_feature_worker_process_failure_is_survived(monkeypatch: pytest.MonkeyPatch, baseline: Path,
                                                    cpu_cfg: AsrConfig, archive: Archive, batches: pa.Table,
                                                    tmp_path: Path) -> None:
    # The one test with a real worker process: the fault fires in the worker, the retry runs inline.
    monkeypatch.setenv("VADPACK_FAULTS", f"feature_worker={batches['batch_id'][2].as_py()}")
    cfg = replace(cpu_cfg, feature_workers=1, prefetch=3)
    messages: list[str] = []
    summary = run_asr(batches, archive.cache_dir, tmp_path, cfg, progress=False,
                      log=messages.append)
    assert summary.failed_segments == 0 and summary.batches == batches.num_rows
    assert summary.feature_retries == 1
    assert rows(tmp_path) == rows(baseline)
    assert sum("asr: batch" in m for m in messages) == batches.num_rows


def one_batch(spans: list[Span], batch_id: int = 0) -> pa.Table:
    return to_table([{"batch_id": batch_id, "content_ids": [s.content_id for s in spans],
                      "start_samples": [s.start_sample for s in spans], "end_samples": [s.end_sample for s in spans],
                      "n_items": len(spans), "max_frames": 1, "real_frames": 1, "padded_frames": 1}], BATCHES)


def test_unreadable_segments_fail_with_a_reason(cpu_cfg: AsrConfig, archive: Archive, baseline: Path,
                                                tmp_path: Path) -> None:
    good = sorted(archive.spans().values())[:4]
    first = good[0]
    bad = [Span(first.content_id, 10**9, 10**9 + 16000),  # past the end of the recording
           Span(first.content_id, first.start_sample, first.start_sample + 1),  # one sample
           Span("no-such-recording", 0, 16000)]  # no cache file at all
    summary = run_asr(one_batch(good + bad), archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    got = {span_of(r): r for r in rows(tmp_path)}
    assert summary.failed_segments == 3 and len(got) == 7
    assert "outside" in got[bad[0]]["error"] and "window" in got[bad[1]]["error"]
    assert "No such file" in got[bad[2]]["error"]
    assert all(got[s]["status"] == "failed" for s in bad)
    expected = {span_of(r): r for r in rows(baseline)}
    for span in good:  # the good segments of the batch still decode, as they do in any batch
        assert got[span]["tokens"] == expected[span]["tokens"]


def test_no_batches_is_a_quick_no_op(cpu_cfg: AsrConfig, archive: Archive, tmp_path: Path) -> None:
    summary = run_asr(BATCHES.empty_table(), archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    assert summary.batches == 0 and not list(tmp_path.glob("*.parquet"))


def test_a_failed_span_is_retried_and_its_part_never_overwritten(cpu_cfg: AsrConfig, archive: Archive,
                                                                 baseline: Path, tmp_path: Path) -> None:
    span = sorted(archive.spans().values())[5]
    missing = Span("later", span.start_sample, span.end_sample)
    assert run_asr(one_batch([missing]), archive.cache_dir, tmp_path, cpu_cfg, progress=False).failed_segments == 1
    # The audio turns up (a file decoded again); the same batch id decodes it into a second part.
    shutil.copy(archive.cache_dir / f"{span.content_id}.s16", archive.cache_dir / "later.s16")
    try:
        summary = run_asr(one_batch([missing]), archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    finally:
        (archive.cache_dir / "later.s16").unlink()
    assert summary.segments == 1 and summary.failed_segments == 0
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["part-00000000.parquet", "part-00000001.parquet"]
    assert sorted(r["status"] for r in rows(tmp_path)) == ["failed", "ok"]
