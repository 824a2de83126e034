"""Where stitch loads stored results from, without reading the whole store for a few recordings.

Each store (transcripts, speaker labels) is a folder of part files that never change once written.
An index kept in the work_dir lists which contents each part holds (its ``content_id`` column, read
once per new part). From it come each content's *version* (the parts that hold it: new, rewritten or
pruned parts change it) and, for a set of recordings to rebuild, the only parts to open.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vadpack.core.partstore import PartStore, speaker_store, transcript_store
from vadpack.core.tables import SPEAKER_LABELS, SPEAKER_STORE, TRANSCRIPTS, read_table, write_table
from vadpack.pipeline.speaker_store import speaker_labels
from vadpack.pipeline.store import segment_results

INDEX = pa.schema([("part", pa.string()), ("file", pa.string()), ("content_id", pa.string())])


def part_key(path: Path) -> str:
    """A part file's identity: its name, size and modification time (a rewritten part is another part)."""
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def index_store(store: PartStore, cache: Path) -> pa.Table:
    """Which contents each part of ``store`` holds (``INDEX``); reads the content ids of new parts only."""
    files = store.parts()
    keys = {part_key(p): p.name for p in files}
    old = read_table(cache, INDEX) if cache.is_file() else INDEX.empty_table()
    kept = old.filter(pc.is_in(old["part"], pa.array(sorted(keys), pa.string())))
    known = set(kept["part"].to_pylist())
    new = []
    for key, name in sorted(keys.items()):
        if key not in known:
            ids = pc.unique(pq.read_table(store.folder / name, columns=["content_id"])["content_id"]).drop_null()
            new.append(pa.table({"part": [key] * len(ids), "file": [name] * len(ids), "content_id": ids},
                                schema=INDEX))
    index = pa.concat_tables([kept, *new])
    if new or kept.num_rows != old.num_rows:
        write_table(index, cache)
    return index


def content_versions(indexes: list[pa.Table]) -> pa.Table:
    """``content_id``, ``version``: a digest of the parts (of every store) that hold each content."""
    parts: dict[str, list[str]] = {}
    for k, index in enumerate(indexes):
        for part, cid in zip(index["part"].to_pylist(), index["content_id"].to_pylist()):
            parts.setdefault(cid, []).append(f"{k}/{part}")
    ids = sorted(parts)
    versions = [hashlib.sha256("|".join(sorted(parts[c])).encode()).hexdigest()[:16] for c in ids]
    return pa.table({"content_id": pa.array(ids, pa.string()), "version": pa.array(versions, pa.string())})


class StoreSource:
    """Stitch's ``ResultSource`` over the transcript store (and the speaker store when speakers is on).

    Args:
        asr_store: the transcript store.
        speakers_store: the speaker store; None when the speakers stage is off.
        index_dir: where the stores' indexes are kept (in the work_dir).
    """

    def __init__(self, asr_store: PartStore, speakers_store: PartStore | None, index_dir: Path) -> None:
        self.asr_store, self.speakers_store = asr_store, speakers_store
        self.with_speakers = speakers_store is not None
        self.index_dir = index_dir
        self._asr_index: pa.Table | None = None
        self._speakers_index: pa.Table | None = None

    def _index(self, store: PartStore) -> pa.Table:
        return index_store(store, self.index_dir / f"index-{store.folder.name}.parquet")

    def versions(self) -> pa.Table:
        self._asr_index = self._index(self.asr_store)
        indexes = [self._asr_index]
        if self.speakers_store is not None:
            self._speakers_index = self._index(self.speakers_store)
            indexes.append(self._speakers_index)
        return content_versions(indexes)

    def load_groups(self, segments: pa.Table, group_of_row: np.ndarray,
                    n_groups: int) -> Iterator[tuple[int, pa.Table, pa.Table | None]]:
        """Read the parts holding the segments' contents once, spilling each group's rows to its own
        folder; then each group's results from its folder alone."""
        index = self._asr_index if self._asr_index is not None else self._index(self.asr_store)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        spill = Path(tempfile.mkdtemp(prefix="stitch-spill-", dir=self.index_dir))
        try:
            labels = self._speaker_labels(segments, spill / "speakers")
            spill_groups(self.asr_store, index, segments, group_of_row, n_groups, spill)
            for g in range(n_groups):
                seg = segments.filter(pa.array(group_of_row == g, pa.bool_()))
                results = segment_results(seg, transcript_store(spill / f"g{g:05d}"))
                rids = pc.unique(seg["recording_id"])
                yield g, results, (labels.filter(pc.is_in(labels["recording_id"], rids)).cast(SPEAKER_LABELS)
                                   if labels is not None else None)
        finally:
            shutil.rmtree(spill, ignore_errors=True)


    def _speaker_labels(self, segments: pa.Table, spill: Path) -> pa.Table | None:
        """The speaker rows of the segments' recordings, from the speaker parts that hold their
        contents only (copied, filtered, to ``spill``; the rest of the store is not read)."""
        if self.speakers_store is None:
            return None
        index = self._speakers_index if self._speakers_index is not None else self._index(self.speakers_store)
        copy_contents(self.speakers_store, index, pc.unique(segments["content_id"]), SPEAKER_STORE, spill)
        return speaker_labels(segments, speaker_store(spill))


def copy_contents(store: PartStore, index: pa.Table, wanted: pa.Array, schema: pa.Schema, folder: Path) -> None:
    """Copy the rows of the ``wanted`` contents into ``folder``, reading only the parts ``index`` says
    hold them; each part's rows go to a file of the same name, so the store's rule for the current
    rows (``core.partstore``: by the order of the parts) picks the same rows from the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in rows_of_contents(store, index, wanted, schema):
        pq.write_table(rows, folder / name, compression="zstd")


def rows_of_contents(store: PartStore, index: pa.Table, wanted: pa.Array,
                     schema: pa.Schema) -> Iterator[tuple[str, pa.Table]]:
    """Per part that ``index`` says holds any of the ``wanted`` contents: its name and those rows."""
    for name in sorted(set(index.filter(pc.is_in(index["content_id"], wanted))["file"].to_pylist())):
        yield name, pq.read_table(store.folder / name, filters=pc.is_in(pc.field("content_id"), wanted)).cast(schema)


def spill_groups(store: PartStore, index: pa.Table, segments: pa.Table, group_of_row: np.ndarray, n_groups: int,
                 spill: Path) -> None:
    """Copy the store rows of the segments' contents into ``spill/g<group>/`` (a content in several
    groups, a copied file, goes to each), reading only the parts that hold those contents.

    Each store part's rows go to a file of the same name, so the store's rule for a span's current
    row (``core.partstore``: by the order of the parts) picks the same row from the copy.
    """
    pairs = pa.table({"content_id": segments["content_id"], "_group": pa.array(group_of_row, pa.int64())})
    pairs = pairs.group_by(["content_id", "_group"]).aggregate([])
    for name, rows in rows_of_contents(store, index, pc.unique(pairs["content_id"]), TRANSCRIPTS):
        # Join on positions: Arrow's hash join does not carry list columns (the tokens).
        keyed = rows.select(["content_id"]).append_column("_pos", pa.array(np.arange(rows.num_rows)))
        keyed = keyed.join(pairs, keys="content_id")
        groups = keyed["_group"].to_numpy()
        pos = keyed["_pos"].to_numpy()
        for g in np.unique(groups).tolist():
            folder = spill / f"g{g:05d}"
            folder.mkdir(exist_ok=True)
            pq.write_table(rows.take(pa.array(np.sort(pos[groups == g]))), folder / name, compression="zstd")
    for g in range(n_groups):
        (spill / f"g{g:05d}").mkdir(exist_ok=True)
