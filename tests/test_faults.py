"""Injected faults (VADPACK_FAULTS) are survived as DESIGN.md says, through the whole CLI."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

from tests.conftest import write_config

TABLES = tuple(OUTPUT_SCHEMAS)  # every public table


def tables(out) -> dict[str, list]:
    return {n: sorted(map(str, pq.read_table(out / f"{n}.parquet").to_pylist())) for n in TABLES}


@pytest.fixture()
def reference(tmp_path, small_archive, tiny_model):
    d = tmp_path / "reference"
    d.mkdir()
    cfg = write_config(d, [str(small_archive)], tiny_model, packer={"budget_s": 40, "max_items": 8})
    assert main(["run", str(cfg), "--no-progress"]) == 3
    return tables(d / "work" / "output")


def run_with(tmp_path, small_archive, tiny_model, monkeypatch, faults: str, **sections):
    d = tmp_path / "faulty"
    d.mkdir(exist_ok=True)
    cfg = write_config(d, [str(small_archive)], tiny_model, packer={"budget_s": 40, "max_items": 8}, **sections)
    monkeypatch.setenv("VADPACK_FAULTS", faults)
    code = main(["run", str(cfg), "--no-progress"])
    monkeypatch.delenv("VADPACK_FAULTS")
    return cfg, d / "work", code


def test_cuda_oom_splits_batches_and_changes_nothing(tmp_path, small_archive, tiny_model, monkeypatch, reference):
    # Every batch of more than one item "runs out of memory": each is halved down to single segments.
    _, work, code = run_with(tmp_path, small_archive, tiny_model, monkeypatch, "cuda_oom=1")
    assert code == 3  # only the text file failed, as without the fault
    assert tables(work / "output") == reference


def test_feature_worker_exception_is_retried(tmp_path, small_archive, tiny_model, monkeypatch, reference):
    _, work, code = run_with(tmp_path, small_archive, tiny_model, monkeypatch, "feature_worker=0",
                             asr={"feature_workers": 1})
    assert code == 3
    assert tables(work / "output") == reference


def test_disk_full_during_a_table_write_then_rerun(tmp_path, small_archive, tiny_model, monkeypatch, reference,
                                                   capsys):
    # The documents table cannot be written: the run stops with a clear error, leaves no partial
    # table or temporary file, and a rerun finishes with the same tables as an uninterrupted run.
    cfg, work, code = run_with(tmp_path, small_archive, tiny_model, monkeypatch, "parquet_write=documents")
    assert code == 1
    assert "no space left on device" in capsys.readouterr().err.lower()
    assert not (work / "output" / "documents.parquet").exists()
    assert list(work.rglob(".*.tmp-*")) == []
    assert not (work / "manifests" / "stitch.json").exists()
    assert main(["run", str(cfg), "--no-progress"]) == 3
    assert tables(work / "output") == reference
