"""The content-keyed part store: a folder of Parquet part files that runs add to and never rewrite.

Both result stores are one: the transcript store (rows keyed by span, ``TRANSCRIPT_KEY``) and the
speaker store (a recording's label rows keyed by content and segments, ``SPEAKER_KEY``). A run adds a
part file per group of work, atomically and under a name no part had before; a crash loses at most
the part being written. Only ``compact`` (``vadpack prune``) and a forced replacement remove parts.

Which rows count (``PartStore.current``), for every store:

    Per key, the current rows are the key's rows in the latest part that holds an ``ok`` row for the
    key, or, when no part does, in the latest part. Parts are ordered by their sequence number.

A part holds one answer per key (a span's one row; a recording's label rows), so a retried failure
is replaced by its retry, and an ``ok`` answer is never displaced by a later failure. Parts are
named ``part-<sequence, 8 digits>.parquet``; names written before this module (``part-<n>-<k>``,
``part-<n>-pruned``) order after ``part-<n>``, and each row of an old ``-pruned`` part, which held
every attempt at a span in attempt order, counts as an answer of its own.

Looking a store up has no side effect: only writing a part creates the folder, and its ``key.json``
(what the store's key stands for) is written beside the first part.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.atomic import write_text_atomic
from vadpack.core.configtools import stable_hash
from vadpack.core.faults import fault_point
from vadpack.core.tables import SPEAKER_STORE, TRANSCRIPTS, read_table, write_table

KEY_FILE = "key.json"
FORCED_SUFFIX = ".forced"
REPLACED_SUFFIX = ".replaced"
TRANSCRIPT_KEY = ("content_id", "start_sample", "end_sample")
SPEAKER_KEY = ("content_id", "segments_digest")
_PART_NAME = re.compile(r"part-(\d+)(?:-(\d+|pruned))?\.parquet")
_LEGACY_PRUNED = 1 << 30  # a legacy ``-pruned`` part orders after every ``-<k>`` part of its number
log = logging.getLogger("vadpack.store")


@dataclass(frozen=True, slots=True)
class PartStore:
    """One store folder of part files.

    Attributes:
        folder: the folder (absent until the first part is written).
        schema: the rows' schema; it has a ``status`` column (``ok`` | ``failed``).
        key: the columns that identify what a row is the result of.
        label: JSON written as ``key.json`` beside the first part (empty: none).
    """

    folder: Path
    schema: pa.Schema
    key: tuple[str, ...]
    label: str = ""

    # ---- reading (no side effects) ---------------------------------------------------------------

    def parts(self) -> list[Path]:
        """The part files, oldest first (by sequence number)."""
        if not self.folder.is_dir():
            return []
        return sorted((p for p in self.folder.glob("*.parquet") if not p.name.startswith(".")), key=_sequence)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Every row of every part (``columns`` only, when given), parts in sequence order."""
        return self._read(columns)[0]

    def done(self) -> pa.Table:
        """The distinct keys that have an ``ok`` row: the work that is never done again."""
        rows = self.read([*self.key, "status"])
        return rows.filter(pc.equal(rows["status"], "ok")).select(list(self.key)).group_by(list(self.key)).aggregate([])

    def current(self) -> pa.Table:
        """The rows that count (the rule in the module docstring), in the order they were written."""
        return _current_of(*self._read(), list(self.key))

    def fingerprint(self) -> str:
        """A cheap fingerprint: the part files' names and sizes (parts never change)."""
        parts = sorted(self.folder.glob("*.parquet")) if self.folder.is_dir() else []
        return stable_hash([[p.name, p.stat().st_size] for p in parts])

    # ---- writing -----------------------------------------------------------------------------------

    def new_parts(self, n: int) -> list[Path]:
        """``n`` names after every part there is, for parts written later (by other processes too)."""
        last = max((_sequence(p)[0] for p in self.parts()), default=-1)
        return [self.folder / f"part-{last + 1 + i:08d}.parquet" for i in range(n)]

    def write_part(self, path: Path, table: pa.Table, metadata: dict[str, str] | None = None) -> Path:
        """Write ``table`` as the part ``path`` (one of ``new_parts``), atomically; never over a part."""
        if path.exists():
            raise FileExistsError(f"{path}: a part file is never overwritten")
        if self.label and not (self.folder / KEY_FILE).is_file():
            write_text_atomic(self.folder / KEY_FILE, self.label)
        return write_table(table.select(self.schema.names).cast(self.schema), path, metadata)

    def append(self, table: pa.Table, metadata: dict[str, str] | None = None) -> Path:
        """Add ``table`` as a new part file."""
        return self.write_part(self.new_parts(1)[0], table, metadata)

    def compact(self, live: pa.Table, dry_run: bool = False) -> int:
        """Keep only the current rows of the keys in ``live`` (a table of key columns) in one part.

        The compacted part goes in before the old ones go out: a crash in between leaves parts whose
        current rows are the same. Returns how many rows went (or would go, on a dry run).
        """
        parts = self.parts()
        rows, answers = self._read()
        current = _current_of(rows, answers, list(self.key))
        keep = _rows_at(current, current, list(self.key), live)
        if not parts or keep.num_rows == rows.num_rows:
            return 0
        if not dry_run:
            self.append(keep)
            for part in parts:
                part.unlink()
        return rows.num_rows - keep.num_rows

    def _read(self, columns: list[str] | None = None) -> tuple[pa.Table, pa.Array]:
        """The rows, and each row's answer: a number that grows with the write (its part, or its row
        in a legacy ``-pruned`` part, which kept every attempt at a span in attempt order)."""
        names = list(columns) if columns is not None else self.schema.names
        tables, answers = [], []
        for i, part in enumerate(self.parts()):
            table = read_table(part, self.schema, names)
            legacy = _sequence(part)[1] == _LEGACY_PRUNED
            tables.append(table)
            answers.append((i << 32) + (np.arange(table.num_rows, dtype=np.int64) if legacy
                                        else np.zeros(table.num_rows, np.int64)))
        if not tables:
            return pa.schema([self.schema.field(c) for c in names]).empty_table(), pa.array([], pa.int64())
        return pa.concat_tables(tables), pa.array(np.concatenate(answers))

    # ---- forced work: replace, never delete first ------------------------------------------------
    #
    # A forced run fills ``<store>.forced`` beside the store (``working``) while readers still read
    # the old store. Once every result is written, ``finish_replacement`` swaps the folders: the old
    # store is renamed to ``<store>.replaced``, the new one takes its name, the old one is deleted. A
    # run killed at any moment leaves either the old store whole (and the ``.forced`` folder, which the
    # next run goes on filling) or a swap half done, which ``recover_replacement`` completes.

    @property
    def forced(self) -> PartStore:
        """The store a forced run fills in place of this one."""
        return replace(self, folder=self.folder.with_name(self.folder.name + FORCED_SUFFIX))

    def replacement_pending(self) -> bool:
        """A forced run of this store began and has not swapped its results in yet."""
        return self.forced.folder.is_dir()

    def begin_replacement(self) -> PartStore:
        """Start (or go on with) replacing this store's results; the old ones stay until the swap."""
        self.forced.folder.mkdir(parents=True, exist_ok=True)
        return self.forced

    def working(self) -> PartStore:
        """Where work is read from and written to: the forced store while a replacement is pending."""
        return self.forced if self.replacement_pending() else self

    def finish_replacement(self) -> bool:
        """Swap the forced store in for this one (a no-op without one); True when it swapped."""
        staged, store = self.forced.folder, self.folder
        if not staged.is_dir():
            return False
        old = store.with_name(store.name + REPLACED_SUFFIX)
        if (store / KEY_FILE).is_file() and not (staged / KEY_FILE).is_file():
            shutil.copy2(store / KEY_FILE, staged / KEY_FILE)
        if old.exists():
            shutil.rmtree(old)
        if store.exists():
            store.rename(old)
        fault_point("store.moved_aside")
        staged.rename(store)
        shutil.rmtree(old, ignore_errors=True)
        log.info("%s: the forced rerun's results replaced the old ones", store.name)
        return True

    def recover_replacement(self) -> None:
        """Complete a swap that a killed run left half done (see ``finish_replacement``)."""
        store = self.folder
        old = store.with_name(store.name + REPLACED_SUFFIX)
        if not old.is_dir():
            return
        staged = self.forced.folder
        if staged.is_dir():  # the old store was moved aside, the new one not yet in place
            if store.exists():
                shutil.rmtree(store)  # at most a key file written since
            staged.rename(store)
        elif not store.exists():
            old.rename(store)  # cannot happen in finish_replacement's order; keep the results regardless
            return
        shutil.rmtree(old, ignore_errors=True)


def transcript_store(folder: Path, label: str = "") -> PartStore:
    """The transcript store in ``folder``: ``TRANSCRIPTS`` rows, one per decoded span."""
    return PartStore(Path(folder), TRANSCRIPTS, TRANSCRIPT_KEY, label)


def speaker_store(folder: Path, label: str = "") -> PartStore:
    """The speaker store in ``folder``: ``SPEAKER_STORE`` rows, a recording's labels per answer."""
    return PartStore(Path(folder), SPEAKER_STORE, SPEAKER_KEY, label)


def _sequence(part: Path) -> tuple[int, int]:
    """A part's place in the order of writes: its number, then a legacy suffix's."""
    m = _PART_NAME.fullmatch(part.name)
    if m is None:
        return (-1, 0)
    suffix = m.group(2)
    return (int(m.group(1)), _LEGACY_PRUNED if suffix == "pruned" else int(suffix or 0))


def _current_of(rows: pa.Table, answers: pa.Array, key: list[str]) -> pa.Table:
    """The current rows of ``rows`` (the rule in the module docstring), in their order."""
    if rows.num_rows == 0:
        return rows
    ok = pc.cast(pc.equal(rows["status"], "ok"), pa.int64())
    keyed = rows.select(key).append_column("_answer", answers).append_column("_ok", ok)
    ranked = keyed.group_by([*key, "_answer"]).aggregate([("_ok", "max")])
    # ok answers first, then the latest: answers stay below 2**62
    ranked = ranked.append_column("_rank", pc.add(pc.multiply(ranked["_ok_max"], 1 << 62), ranked["_answer"]))
    best = ranked.group_by(key).aggregate([("_rank", "max")])
    chosen = ranked.join(best, keys=key).filter(pc.equal(pc.field("_rank"), pc.field("_rank_max")))
    return _rows_at(rows, keyed, [*key, "_answer"], chosen)


def _rows_at(rows: pa.Table, keyed: pa.Table, key: list[str], wanted: pa.Table) -> pa.Table:
    """The rows of ``rows`` whose ``key`` values in ``keyed`` (aligned with ``rows``) are in ``wanted``,
    in their order. Joins on positions: Arrow's hash join does not carry list columns (the tokens)."""
    positions = keyed.select(key).append_column("_pos", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    hit = positions.join(wanted.select(key), keys=key, join_type="left semi")
    return rows.take(pa.array(np.sort(hit["_pos"].to_numpy()), pa.int64()))
