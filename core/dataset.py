"""The public tables as datasets: part files of whole recordings, listed by an atomic manifest.

A living archive of thousands of hours cannot rewrite its tables on every run. Each public table is
a folder of Parquet part files, ``<output_dir>/<name>.parquet/part-b<bucket>-g<generation>.parquet``;
a part holds every row of the recordings whose id hashes to its bucket (a stable hash, so a
recording stays in its bucket from run to run). A run that changes some recordings rewrites only
their buckets' parts, under new names, and then commits:

1. the new parts are written to ``_vadpack/staging/`` (outside every table folder, so no reader,
   glob or not, sees them; a run killed here leaves the tables as they were),
2. they are renamed into the table folders,
3. the manifest ``_vadpack/manifest.json``, which lists the live part of every table and bucket,
   is written to a temporary name and renamed over the old one (the commit point),
4. the parts the manifest no longer lists are deleted.

``read_dataset`` (and ``vadpack.read_tables``) read the parts the manifest lists, so they never see a
half-written table. A plain glob (``tokens.parquet/*.parquet``) sees exactly the live parts except
during steps 2-4 of a run (a few renames and deletions); a run killed there leaves extra parts that
the next run deletes before it writes anything (``sweep``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vadpack.core.atomic import write_text_atomic
from vadpack.core.tables import read_file, read_table, write_table

STATE_DIR = "_vadpack"
MANIFEST = "manifest.json"
LAYOUT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an output folder holds, as of its last committed stitch.

    Attributes:
        generation: counts the commits; new part files carry it in their names, so they never
            overwrite a live part.
        n_buckets: how many buckets recording ids hash into.
        layout: a digest of what every row depends on beyond its own recording (the model, the
            stitch options, the schema version); another layout rewrites every table.
        tables: per table, per bucket, the live part file's name.
        rows: per table, per bucket, the part's rows.
        state: the file (in ``_vadpack/``) with each recording's bucket, input digest and exports.
    """

    generation: int
    n_buckets: int
    layout: str
    tables: dict[str, dict[int, str]] = field(default_factory=dict)
    rows: dict[str, dict[int, int]] = field(default_factory=dict)
    state: str = ""

    def to_json(self) -> str:
        return json.dumps({"layout_version": LAYOUT_VERSION, "generation": self.generation,
                           "n_buckets": self.n_buckets, "layout": self.layout, "state": self.state,
                           "tables": {t: {str(b): f for b, f in sorted(p.items())} for t, p in self.tables.items()},
                           "rows": {t: {str(b): n for b, n in sorted(p.items())} for t, p in self.rows.items()}},
                          indent=1) + "\n"

    @staticmethod
    def from_json(text: str) -> Manifest:
        data = json.loads(text)
        return Manifest(generation=int(data["generation"]), n_buckets=int(data["n_buckets"]),
                        layout=str(data["layout"]), state=str(data["state"]),
                        tables={t: {int(b): f for b, f in p.items()} for t, p in data["tables"].items()},
                        rows={t: {int(b): int(n) for b, n in p.items()} for t, p in data["rows"].items()})

    def total_rows(self, name: str) -> int:
        return sum(self.rows.get(name, {}).values())


def state_dir(output_dir: Path) -> Path:
    return Path(output_dir) / STATE_DIR


def manifest_path(output_dir: Path) -> Path:
    """The manifest file: what a change to the output folder's tables changes."""
    return state_dir(output_dir) / MANIFEST


def read_manifest(output_dir: Path) -> Manifest | None:
    """The output folder's manifest, or None (nothing committed yet, or tables of an older layout)."""
    path = manifest_path(output_dir)
    if not path.is_file():
        return None
    return Manifest.from_json(path.read_text())


def table_dir(output_dir: Path, name: str) -> Path:
    return Path(output_dir) / f"{name}.parquet"


def part_name(bucket: int, generation: int) -> str:
    return f"part-b{bucket:05d}-g{generation:06d}.parquet"


def bucket_of(recording_ids: Iterable[str], n_buckets: int) -> np.ndarray:
    """Each recording id's bucket: a stable hash (blake2b, not Python's salted ``hash``) modulo ``n_buckets``."""
    return np.array([int.from_bytes(hashlib.blake2b(r.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "little") % n_buckets for r in recording_ids], dtype=np.int64)


def read_dataset(output_dir: str | os.PathLike[str], name: str, schema: pa.Schema,
                 recording_ids: Sequence[str] | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read one public table, whole or only the rows of some recordings.

    With ``recording_ids`` only the parts of their buckets are opened, so one recording of a large
    archive reads one part file per table. A folder without a manifest (an older vadpack's single
    file or folder of parts) is read as it is.

    Args:
        output_dir: the run's output folder.
        name: the table (``tokens``, ...).
        schema: its explicit schema; the result has exactly these columns (or ``columns``) and types.
        recording_ids: keep only these recordings' rows.
        columns: read only these columns.

    Raises:
        FileNotFoundError: the table does not exist (stitch has not run).
    """
    out = Path(output_dir)
    manifest = read_manifest(out)
    wanted = None if recording_ids is None else pa.array(sorted(set(recording_ids)), pa.string())
    if manifest is None or name not in manifest.tables:
        path = table_dir(out, name)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run `vadpack run CONFIG` to write the tables")
        table = read_table(path, schema, columns)
        return table if wanted is None else table.filter(pc.is_in(table["recording_id"], wanted))
    parts = manifest.tables[name]
    buckets = sorted(parts) if wanted is None else sorted(set(bucket_of(wanted.to_pylist(), manifest.n_buckets)))
    return read_parts([table_dir(out, name) / parts[b] for b in buckets if b in parts], schema, columns, wanted)


def read_parts(paths: list[Path], schema: pa.Schema, columns: list[str] | None = None,
               recording_ids: pa.Array | None = None) -> pa.Table:
    """Part files read as one table of ``schema`` (only ``columns``), optionally only some recordings."""
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    if recording_ids is None:  # ParquetFile: pq.read_table's dataset layer imports pandas
        tables = [read_file(p, schema.names) for p in paths]
    else:
        filters = pc.is_in(pc.field("recording_id"), recording_ids)
        tables = [pq.read_table(p, columns=schema.names, filters=filters) for p in paths]
    tables = [t.select(schema.names).cast(schema) for t in tables]
    return pa.concat_tables(tables) if tables else schema.empty_table()


class Commit:
    """One generation of an output folder: parts are staged, then made live all together.

    Args:
        output_dir: the output folder.
        previous: its manifest before this run (None: nothing to keep).
        n_buckets: the bucket count of the new generation.
        layout: the layout digest of the new generation.
    """

    def __init__(self, output_dir: Path, previous: Manifest | None, n_buckets: int, layout: str) -> None:
        self.out = Path(output_dir)
        self.previous = previous
        keep = previous is not None and previous.n_buckets == n_buckets and previous.layout == layout
        self.generation = (previous.generation if previous else 0) + 1
        self.tables = {t: dict(p) for t, p in previous.tables.items()} if keep and previous else {}
        self.rows = {t: dict(p) for t, p in previous.rows.items()} if keep and previous else {}
        self.n_buckets, self.layout = n_buckets, layout
        self.staging = state_dir(self.out) / "staging"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self._staged: list[tuple[str, int, Path]] = []
        self._dropped: list[tuple[str, int]] = []

    def live_part(self, name: str, bucket: int) -> Path | None:
        """The part that holds ``bucket`` of table ``name`` now (None: none)."""
        part = self.tables.get(name, {}).get(bucket)
        return table_dir(self.out, name) / part if part else None

    def stage(self, name: str, bucket: int, table: pa.Table, metadata: dict[str, str]) -> None:
        """Write the new part of ``bucket`` of table ``name`` (not yet visible)."""
        path = self.staging / f"{name}-{part_name(bucket, self.generation)}"
        write_table(table, path, metadata)
        self._staged.append((name, bucket, path))

    def drop(self, name: str, bucket: int) -> None:
        """The bucket has no recording any more: its part leaves the table."""
        self._dropped.append((name, bucket))

    def finish(self, state: pa.Table) -> Manifest:
        """Make the staged parts live (see the module docstring for the order) and return the new manifest."""
        state_file = f"recordings-g{self.generation:06d}.parquet"
        write_table(state, state_dir(self.out) / state_file)
        for name, bucket in self._dropped:
            self.tables.get(name, {}).pop(bucket, None)
            self.rows.get(name, {}).pop(bucket, None)
        for name, bucket, path in self._staged:
            folder = _table_folder(self.out, name)
            final = part_name(bucket, self.generation)
            os.replace(path, folder / final)
            self.tables.setdefault(name, {})[bucket] = final
            self.rows.setdefault(name, {})[bucket] = pq.ParquetFile(folder / final).metadata.num_rows
        manifest = Manifest(self.generation, self.n_buckets, self.layout, self.tables, self.rows, state_file)
        write_text_atomic(manifest_path(self.out), manifest.to_json())
        sweep(self.out, manifest)
        return manifest


def _table_folder(out: Path, name: str) -> Path:
    """The table's folder, made; an older vadpack's single-file table is moved aside first (the
    sweep after the commit deletes it)."""
    folder = table_dir(out, name)
    if folder.is_file():
        os.replace(folder, state_dir(out) / f"legacy-{name}.parquet")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sweep(output_dir: Path, manifest: Manifest) -> int:
    """Delete what the manifest does not list: parts of older generations (also those a killed run
    left), staged parts, older state files, an older vadpack's tables. Returns the files deleted."""
    out = Path(output_dir)
    removed = 0
    for name, parts in manifest.tables.items():
        folder = table_dir(out, name)
        live = set(parts.values())
        for path in folder.glob("*.parquet") if folder.is_dir() else ():
            if path.name not in live:
                path.unlink(missing_ok=True)
                removed += 1
    shutil.rmtree(state_dir(out) / "staging", ignore_errors=True)
    for path in state_dir(out).glob("*.parquet"):
        if path.name != manifest.state:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def read_state(output_dir: Path, manifest: Manifest | None, schema: pa.Schema) -> pa.Table:
    """The per-recording state of the last commit (empty without one)."""
    if manifest is None or not manifest.state:
        return schema.empty_table()
    return read_table(state_dir(output_dir) / manifest.state, schema)
