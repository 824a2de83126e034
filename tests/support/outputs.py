"""Comparing output folders: every public table row for row, and every export byte for byte."""

from __future__ import annotations

from pathlib import Path

from vadpack.core.dataset import read_dataset
from vadpack.core.tables import OUTPUT_SCHEMAS

TABLES = tuple(OUTPUT_SCHEMAS)  # every public table


def snapshot(out: Path, with_batch_ids: bool = False) -> dict[str, list[tuple]]:
    """Every table's rows (sorted) and every export file's bytes, ready to compare with ``==``.

    Without ``with_batch_ids``, ``segments.batch_id`` is left out: it names the batch a segment was
    decoded in, the one column an incremental run may legitimately give differently.
    """
    snap = {}
    for name in TABLES:
        table = read_dataset(out, name, OUTPUT_SCHEMAS[name])
        if name == "segments" and not with_batch_ids:
            table = table.drop_columns(["batch_id"])
        snap[name] = sorted(tuple(str(v) for v in r.values()) for r in table.to_pylist())
    for fmt in sorted(p for p in Path(out).iterdir() if p.is_dir() and p.suffix != ".parquet"
                      and not p.name.startswith("_")):  # the export folders
        snap[fmt.name] = sorted((f.relative_to(fmt).as_posix(), f.read_bytes()) for f in fmt.rglob("*")
                                if f.is_file())
    return snap
