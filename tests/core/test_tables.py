"""TableSink: a table replaces its previous version whichever form either has, and a failed write
leaves the previous version and no temporary behind."""

from __future__ import annotations

import pyarrow as pa
import pytest
from vadpack.core.tables import TableSink, read_table

SCHEMA = pa.schema([("x", pa.int64())])


def write(path, n: int, partition_rows: int | None) -> None:
    with TableSink(path, SCHEMA, partition_rows=partition_rows) as sink:
        for start in range(0, n, 7):
            sink.write(pa.table({"x": list(range(start, min(n, start + 7)))}, schema=SCHEMA))


def temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("forms", [(None, 10), (10, None), (10, 4), (None, None)])
def test_a_table_replaces_its_previous_version_in_either_form(tmp_path, forms):
    path = tmp_path / "t.parquet"
    write(path, 30, forms[0])
    write(path, 25, forms[1])
    assert path.is_dir() == (forms[1] is not None)
    assert read_table(path, SCHEMA)["x"].to_pylist() == list(range(25))
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("partition_rows", [None, 10])
def test_a_failed_write_keeps_the_old_table_and_leaves_no_temporary(tmp_path, monkeypatch, partition_rows):
    path = tmp_path / "t.parquet"
    write(path, 30, None if partition_rows else 10)  # the other form, to replace across forms too
    # A full disk on the second part file (or on the single file's creation).
    monkeypatch.setenv("VADPACK_FAULTS", "parquet_write=part-00001!" if partition_rows else "parquet_write=t.parquet!")
    with pytest.raises(OSError, match="no space left"):
        write(path, 25, partition_rows)
    monkeypatch.delenv("VADPACK_FAULTS")
    assert read_table(path, SCHEMA)["x"].to_pylist() == list(range(30))
    assert temporaries(tmp_path) == []


def test_a_caller_failing_between_writes_leaves_no_temporary(tmp_path):
    path = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError), TableSink(path, SCHEMA, partition_rows=5) as sink:
        sink.write(pa.table({"x": list(range(12))}, schema=SCHEMA))
        raise RuntimeError("an export failed")
    assert not path.exists() and temporaries(tmp_path) == []
