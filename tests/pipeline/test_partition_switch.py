"""stitch.partition_rows changed for an existing output, and an output an older vadpack wrote (one
file per table): each rerun rewrites the tables into part files, each table reads whole in DuckDB
from its folder, and no staged, temporary or superseded file is left behind."""

from __future__ import annotations

import shutil

import duckdb
import pyarrow.parquet as pq
from vadpack.core.dataset import read_dataset
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

from tests.conftest import write_config

TABLES = tuple(OUTPUT_SCHEMAS)  # documents, segments, tokens, words, turns, speakers, failures


def counts(out) -> dict[str, int]:
    """Rows per table as DuckDB reads its folder."""
    result = {}
    for name in TABLES:
        path = out / f"{name}.parquet"
        assert path.is_dir(), name
        result[name] = duckdb.execute("select count(*) from read_parquet(?)", [str(path / "*.parquet")]).fetchone()[0]
    return result


def leftovers(out) -> list[str]:
    staged = [p.name for p in out.rglob("*") if ".staging" in p.name or ".tmp-" in p.name or p.name == "staging"]
    live = {name: len(list((out / f"{name}.parquet").glob("*.parquet"))) for name in TABLES}
    parts = {name: len(read_dataset_parts(out, name)) for name in TABLES}
    return staged + [f"{name}: {live[name]} files, {parts[name]} live" for name in TABLES if live[name] != parts[name]]


def read_dataset_parts(out, name) -> list[str]:
    from vadpack.core.dataset import read_manifest

    return list(read_manifest(out).tables[name].values())


def test_partition_rows_changed_for_an_existing_output(tmp_path, small_archive, tiny_model, capsys):
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model)
    out = tmp_path / "work" / "output"
    assert main(["run", str(cfg), "--no-progress"]) == 3  # notes.mp3 is not audio
    rows = counts(out)
    assert rows["tokens"] > 20 and len(list((out / "tokens.parquet").glob("part-*.parquet"))) == 1
    assert main(["run", str(cfg), "--no-progress", "-o", "stitch.partition_rows=20"]) == 3
    assert "(stitch)" in capsys.readouterr().out  # only stitch reran: its config changed
    assert counts(out) == rows
    assert len(list((out / "tokens.parquet").glob("part-*.parquet"))) > 1
    assert leftovers(out) == []
    assert main(["run", str(cfg), "--no-progress"]) == 3
    assert counts(out) == rows and leftovers(out) == []


def test_an_older_vadpacks_single_file_tables_are_replaced(tmp_path, small_archive, tiny_model):
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model)
    out = tmp_path / "work" / "output"
    assert main(["run", str(cfg), "--no-progress"]) == 3
    rows = counts(out)
    tables = {name: read_dataset(out, name, OUTPUT_SCHEMAS[name]) for name in TABLES}
    # The layout of vadpack before part files: one file per table, no manifest.
    shutil.rmtree(out / "_vadpack")
    for name, table in tables.items():
        shutil.rmtree(out / f"{name}.parquet")
        pq.write_table(table, out / f"{name}.parquet")
    assert main(["run", str(cfg), "--no-progress", "--from", "stitch"]) == 3
    assert counts(out) == rows and leftovers(out) == []
    assert not list((out / "_vadpack").glob("legacy-*"))
