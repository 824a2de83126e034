"""stitch.partition_rows switched on and off for an existing output: each rerun works, each table
reads whole in DuckDB, and no staging or temporary file is left behind."""

from __future__ import annotations

import duckdb
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

from tests.conftest import write_config

TABLES = tuple(OUTPUT_SCHEMAS)  # documents, segments, tokens, words, failures


def counts(out, partitioned: bool) -> dict[str, int]:
    """Rows per table as DuckDB reads it: the file, or every part in the folder."""
    result = {}
    for name in TABLES:
        path = out / f"{name}.parquet"
        assert path.is_dir() == partitioned, name
        source = str(path / "*.parquet") if partitioned else str(path)
        result[name] = duckdb.execute("select count(*) from read_parquet(?)", [source]).fetchone()[0]
    return result


def leftovers(out) -> list[str]:
    return [p.name for p in out.rglob(".*") if ".staging" in p.name or ".tmp-" in p.name]


def test_partition_rows_on_then_off_for_an_existing_output(tmp_path, small_archive, tiny_model, capsys):
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model)
    out = tmp_path / "work" / "output"
    assert main(["run", str(cfg), "--no-progress"]) == 3  # notes.mp3 is not audio
    rows = counts(out, partitioned=False)
    assert rows["tokens"] > 20
    assert main(["run", str(cfg), "--no-progress", "-o", "stitch.partition_rows=20"]) == 3
    assert "(stitch)" in capsys.readouterr().out  # only stitch reran: its config changed
    assert counts(out, partitioned=True) == rows
    assert len(list((out / "tokens.parquet").glob("part-*.parquet"))) > 1
    assert leftovers(out) == []
    assert main(["run", str(cfg), "--no-progress"]) == 3
    assert counts(out, partitioned=False) == rows
    assert leftovers(out) == []
