"""The asr stage: part files, resume, OOM halving and feature-worker failures end to end."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from asr.config import AsrConfig
from asr.stage import run_asr
from core.tables import BATCHES, TRANSCRIPTS, VAD_SEGMENTS, read_table, to_table
from tests.asr.conftest import Archive, pack

BUDGET_S = 45


@pytest.fixture(scope="module")
def batches(archive: Archive) -> pa.Table:
    return pack(archive.keys, archive.lengths(), BUDGET_S)


@pytest.fixture(scope="module")
def baseline(tiny_model: Path, archive: Archive, batches: pa.Table, tmp_path_factory) -> Path:
    cfg = AsrConfig(model=str(tiny_model), device="cpu", threads=2, feature_workers=0, batches_per_part=2)
    parts = tmp_path_factory.mktemp("baseline") / "transcripts"
    run_asr(batches, archive.segments, archive.cache_dir, parts, cfg, progress=False)
    return parts


def rows(parts: Path) -> list[dict]:
    table = read_table(parts, TRANSCRIPTS)
    return sorted(table.to_pylist(), key=lambda r: (r["recording_id"], r["segment_index"]))


def test_one_row_per_segment_in_part_files(baseline: Path, archive: Archive, batches: pa.Table) -> None:
    names = sorted(p.name for p in baseline.glob("*.parquet"))
    ids = sorted(batches["batch_id"].to_pylist())
    assert names == [f"part-{i:06d}.parquet" for i in ids[::2]]
    table = read_table(baseline, TRANSCRIPTS)
    assert table.schema.equals(TRANSCRIPTS)
    got = rows(baseline)
    # Invariant: every segment of every batch is exactly one row, none lost, none doubled.
    assert [(r["recording_id"], r["segment_index"]) for r in got] == sorted(archive.keys)
    assert all(r["status"] == "ok" and r["error"] is None for r in got)
    assert sum(len(r["tokens"]) for r in got) > 5 * len(got)


def test_rerun_rewrites_only_the_missing_part(baseline: Path, cpu_cfg: AsrConfig, archive: Archive,
                                              batches: pa.Table, tmp_path: Path) -> None:
    parts = tmp_path / "transcripts"
    shutil.copytree(baseline, parts)
    victim = sorted(parts.glob("*.parquet"))[1]
    victim.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet")}
    summary = run_asr(batches, archive.segments, archive.cache_dir, parts, cpu_cfg, progress=False)
    assert summary["parts_written"] == 1 and summary["parts_skipped"] == len(before)
    assert {p.name: p.stat().st_mtime_ns for p in parts.glob("*.parquet") if p.name in before} == before
    assert victim.exists() and rows(parts) == rows(baseline)
    # A rerun with every part present does nothing, not even load the model.
    again = run_asr(batches, archive.segments, archive.cache_dir, parts, cpu_cfg, progress=False)
    assert again["batches"] == 0 and again["parts_skipped"] == len(before) + 1


def test_injected_oom_splits_and_gives_identical_results(
        monkeypatch: pytest.MonkeyPatch, baseline: Path, cpu_cfg: AsrConfig, archive: Archive,
        batches: pa.Table, tmp_path: Path) -> None:
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=1")
    summary = run_asr(batches, archive.segments, archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    assert summary["oom_splits"] > 0 and summary["failed_segments"] == 0
    assert rows(tmp_path) == rows(baseline)


def test_feature_failure_is_retried_inline(monkeypatch: pytest.MonkeyPatch, baseline: Path,
                                           cpu_cfg: AsrConfig, archive: Archive, batches: pa.Table,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("VADPACK_FAULTS", f"feature_worker={batches['batch_id'][0].as_py()}")
    summary = run_asr(batches, archive.segments, archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    assert summary["failed_segments"] == 0 and summary["feature_retries"] == 1
    assert rows(tmp_path) == rows(baseline)


def test_feature_worker_process_failure_is_survived(monkeypatch: pytest.MonkeyPatch, baseline: Path,
                                                    cpu_cfg: AsrConfig, archive: Archive, batches: pa.Table,
                                                    tmp_path: Path) -> None:
    # The one test with a real worker process: the fault fires in the worker, the retry runs inline.
    monkeypatch.setenv("VADPACK_FAULTS", f"feature_worker={batches['batch_id'][2].as_py()}")
    cfg = replace(cpu_cfg, feature_workers=1, prefetch=3)
    messages: list[str] = []
    summary = run_asr(batches, archive.segments, archive.cache_dir, tmp_path, cfg, progress=False,
                      log=messages.append)
    assert summary["failed_segments"] == 0 and summary["batches"] == batches.num_rows
    assert summary["feature_retries"] == 1
    assert rows(tmp_path) == rows(baseline)
    assert sum("asr: batch" in m for m in messages) == batches.num_rows


def test_unreadable_segments_fail_with_a_reason(cpu_cfg: AsrConfig, archive: Archive, baseline: Path,
                                                tmp_path: Path) -> None:
    seg = archive.segments.to_pylist()
    past_end = {"start_sample": 10**9, "end_sample": 10**9 + 16000}
    bad = [{**seg[0], "segment_index": 900, **past_end},
           {**seg[0], "segment_index": 901, "end_sample": seg[0]["start_sample"] + 1}]  # one sample
    segments = to_table(seg + bad, VAD_SEGMENTS)
    keys = [(s["recording_id"], s["segment_index"]) for s in seg[:4] + bad]
    table = to_table([{"batch_id": 0, "recording_ids": [k[0] for k in keys],
                       "segment_indices": [k[1] for k in keys], "n_items": len(keys), "max_frames": 1,
                       "real_frames": 1, "padded_frames": 1}], BATCHES)
    summary = run_asr(table, segments, archive.cache_dir, tmp_path, cpu_cfg, progress=False)
    got = {(r["recording_id"], r["segment_index"]): r for r in rows(tmp_path)}
    assert summary["failed_segments"] == 2 and len(got) == 6
    assert "outside" in got[keys[4]]["error"] and "window" in got[keys[5]]["error"]
    assert got[keys[4]]["status"] == got[keys[5]]["status"] == "failed"
    expected = {(r["recording_id"], r["segment_index"]): r for r in rows(baseline)}
    for key in keys[:4]:  # the good segments of the batch still decode, as they do in any batch
        assert got[key]["tokens"] == expected[key]["tokens"]


def test_no_batches_is_a_quick_no_op(cpu_cfg: AsrConfig, archive: Archive, tmp_path: Path) -> None:
    summary = run_asr(BATCHES.empty_table(), archive.segments, archive.cache_dir, tmp_path, cpu_cfg,
                      progress=False)
    assert summary["batches"] == 0 and not list(tmp_path.glob("*.parquet"))


def test_batch_naming_an_unknown_segment(cpu_cfg: AsrConfig, archive: Archive, tmp_path: Path) -> None:
    table = to_table([{"batch_id": 3, "recording_ids": ["nope"], "segment_indices": [0], "n_items": 1,
                       "max_frames": 1, "real_frames": 1, "padded_frames": 1}], BATCHES)
    with pytest.raises(ValueError, match=r"nope#0.*rerun the pack stage"):
        run_asr(table, archive.segments, archive.cache_dir, tmp_path, cpu_cfg, progress=False)
