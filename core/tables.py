"""Parquet tables: explicit schemas, atomic writes, and readers.

Every table is written with an explicit pyarrow schema (an inferred one drifts: a column that is all
null in one part becomes ``null`` typed and the next part no longer concatenates), zstd compression
and key-value metadata. Files are written to a temporary name in the same folder and renamed, so a
reader never sees a half-written table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from vadpack.core import __version__
from vadpack.core.atomic import atomic_path, fsync_file, tmp_name

# 2: words table, n_words in documents and segments; wpm counts words.
# 3: speaker columns (documents.n_speakers, segments/tokens/words.speaker), turns, speakers.
# 4: segments.language/emotion/event and documents.languages (SenseVoice; null/empty for Paraformer).
# 5: turns.overlap (seconds of the turn that segmentation-3.0 calls overlapped speech).
SCHEMA_VERSION = "5"

# ---- work_dir tables (between stages) ---------------------------------------------------------

RECORDINGS = pa.schema([
    ("recording_id", pa.string()),
    ("path", pa.string()),
    ("content_id", pa.string()),  # hash of the file's bytes: the key of its cached audio and results
    ("duration_s", pa.float64()),
    ("sample_rate", pa.int32()),
    ("channels", pa.int32()),
    ("codec", pa.string()),
    ("size_bytes", pa.int64()),
    ("mtime_ns", pa.int64()),
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
])

VAD_SEGMENTS = pa.schema([
    ("recording_id", pa.string()),
    ("segment_index", pa.int32()),
    ("start_sample", pa.int64()),
    ("end_sample", pa.int64()),
    ("backend", pa.string()),
    ("content_id", pa.string()),  # the recording's content id: (content_id, start, end) keys its result
])

# One row per recording that went through vad: decoded length, or the reason it failed.
VAD_RECORDINGS = pa.schema([
    ("recording_id", pa.string()),
    ("n_samples", pa.int64()),
    ("n_segments", pa.int32()),
    ("speech_samples", pa.int64()),
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
    ("warning", pa.string()),
])

# A batch lists the audio spans it decodes, keyed by content: asr needs no recording ids.
BATCHES = pa.schema([
    ("batch_id", pa.int32()),
    ("content_ids", pa.list_(pa.string())),
    ("start_samples", pa.list_(pa.int64())),
    ("end_samples", pa.list_(pa.int64())),
    ("n_items", pa.int32()),
    ("max_frames", pa.int32()),
    ("real_frames", pa.int64()),
    ("padded_frames", pa.int64()),
])

# Rows of the transcript store: one per decoded span, keyed by content, not by recording or batch.
TRANSCRIPTS = pa.schema([
    ("content_id", pa.string()),
    ("start_sample", pa.int64()),
    ("end_sample", pa.int64()),
    ("batch_id", pa.int32()),  # the batch it was decoded in (unique within one store)
    ("text", pa.string()),
    ("tokens", pa.list_(pa.string())),
    ("token_start_ms", pa.list_(pa.int32())),  # relative to the segment start
    ("token_end_ms", pa.list_(pa.int32())),
    ("language", pa.string()),  # what the model heard (SenseVoice); null for models that do not tell
    ("emotion", pa.string()),
    ("event", pa.string()),
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
])

# Each segment's result as stitch reads it: the store row of its span, joined to the segment.
SEGMENT_RESULTS = pa.schema([
    ("recording_id", pa.string()),
    ("segment_index", pa.int32()),
    ("batch_id", pa.int32()),
    ("text", pa.string()),
    ("tokens", pa.list_(pa.string())),
    ("token_start_ms", pa.list_(pa.int32())),  # relative to the segment start
    ("token_end_ms", pa.list_(pa.int32())),
    ("language", pa.string()),
    ("emotion", pa.string()),
    ("event", pa.string()),
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
])

# What the speakers stage finds in one recording's content: spans of one speaker that tile its speech
# segments (status ok), and failures: a window that got no embedding (its samples), or the whole
# content when no window could be embedded (start/end null).
SPEAKER_RESULTS = pa.schema([
    ("content_id", pa.string()),
    ("start_sample", pa.int64()),
    ("end_sample", pa.int64()),
    ("speaker", pa.string()),  # S1, S2, ... in order of first appearance in the recording; null if failed
    # ok | failed | overlap: a region the segmentation model calls >= 2 speakers (null speaker); a content
    # the model ran on without any has one empty overlap row [0, 0), so "none found" differs from "not run"
    ("status", pa.string()),
    ("error", pa.string()),
])

# Rows of the speaker store: the results, keyed by content and by the segments they were found on
# (clustering is per recording, so a recording's labels depend on all of its segments).
SPEAKER_STORE = pa.schema([*SPEAKER_RESULTS, ("segments_digest", pa.string())])

# Each recording's speaker rows as stitch reads them: the store rows of its content and segments.
SPEAKER_LABELS = pa.schema([("recording_id", pa.string()), *[f for f in SPEAKER_RESULTS if f.name != "content_id"]])

# ---- output_dir tables (the public contract; bump SCHEMA_VERSION on any change) ---------------

DOCUMENTS = pa.schema([
    ("recording_id", pa.string()),
    ("path", pa.string()),
    ("duration_s", pa.float64()),
    ("speech_s", pa.float64()),
    ("n_segments", pa.int32()),
    ("n_tokens", pa.int32()),
    ("n_words", pa.int32()),
    ("text", pa.string()),
    ("words_per_minute", pa.float64()),  # words (not tokens) per minute of speech
    ("model", pa.string()),
    ("status", pa.string()),  # ok | partial (some segments failed in asr)
    ("warning", pa.string()),  # e.g. a truncated file: decoded what was readable
    ("n_speakers", pa.int32()),  # null without the speakers stage, or when it failed on the recording
    # The languages its segments were heard in, most speech first ("nospeech" left out); empty when
    # the model does not tell (Paraformer). DuckDB: languages[1], list_contains(languages, 'en').
    ("languages", pa.list_(pa.string())),
])

SEGMENTS = pa.schema([
    ("recording_id", pa.string()),
    ("segment_index", pa.int32()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("text", pa.string()),
    ("batch_id", pa.int32()),
    ("n_tokens", pa.int32()),
    ("n_words", pa.int32()),
    ("speaker", pa.string()),  # who covers most of the segment; null without speakers
    # SenseVoice: zh, en, yue, ja, ko or nospeech; neutral, happy, sad, angry, fearful, disgusted,
    # surprised or unknown; speech, bgm, applause, laughter, cry, sneeze, breath, cough, ... or
    # unknown. Null for Paraformer and for segments that failed in asr.
    ("language", pa.string()),
    ("emotion", pa.string()),
    ("event", pa.string()),
])

TOKENS = pa.schema([
    ("recording_id", pa.string()),
    ("segment_index", pa.int32()),
    ("token_index", pa.int32()),
    ("token", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("speaker", pa.string()),  # the speaker at the token's midpoint; null without speakers
])

FAILURES = pa.schema([
    ("recording_id", pa.string()),
    ("path", pa.string()),
    ("stage", pa.string()),
    ("error", pa.string()),
    ("segment_index", pa.int32()),  # null when the whole recording failed
])

# Words: ``@@`` pieces merged (start of the first piece, end of the last), CJK characters one word each.
WORDS = pa.schema([
    ("recording_id", pa.string()),
    ("segment_index", pa.int32()),
    ("word_index", pa.int32()),
    ("word", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
])

# Consecutive tokens of one speaker (split at every speaker change, also inside a segment); without
# speakers, one turn per segment with a null speaker.
TURNS = pa.schema([
    ("recording_id", pa.string()),
    ("turn_index", pa.int32()),
    ("speaker", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("text", pa.string()),
    # seconds of [start_s, end_s] that segmentation-3.0 calls >= 2 speakers at once; null where it did
    # not run (speakers off, speakers.regions vad, a recording without labels)
    ("overlap", pa.float64()),
])

# One row per speaker of a recording (empty without speakers).
SPEAKERS = pa.schema([
    ("recording_id", pa.string()),
    ("speaker", pa.string()),
    ("talk_s", pa.float64()),  # speech time of this speaker (the sum of its spans)
    ("n_turns", pa.int32()),
    ("first_s", pa.float64()),  # where the speaker is first heard
])

OUTPUT_SCHEMAS = {"documents": DOCUMENTS, "segments": SEGMENTS, "tokens": TOKENS, "words": WORDS,
                  "turns": TURNS, "speakers": SPEAKERS, "failures": FAILURES}


def write_table(table: pa.Table, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``table`` to ``path`` atomically (temp file + fsync + rename), zstd compressed.

    Args:
        table: data; its schema must already be the explicit schema of the table.
        path: final file name.
        metadata: extra key-value metadata; the vadpack and schema versions are always added.
    """
    path = Path(path)
    table = table.replace_schema_metadata(_metadata(table.schema, metadata))
    with atomic_path(path) as tmp:
        _fault_point("parquet_write", path)
        pq.write_table(table, tmp, compression="zstd")
    return path


class TableSink:
    """Writes one table chunk by chunk, so a large table never has to be in memory whole.

    The table is a single Parquet file (one row group per chunk) or, with ``partition_rows``, a
    folder of part files of that many rows. Either way it is written under a temporary name and
    appears under its final name only in :meth:`close`, replacing the previous table whichever form
    it had (switching ``partition_rows`` on or off for an existing output). When a write or the
    close fails, the temporary file or folder is removed; used as a context manager, so it is when
    the caller fails between writes.
    """

    def __init__(self, path: Path, schema: pa.Schema, metadata: dict[str, str] | None = None,
                 partition_rows: int | None = None) -> None:
        self.path, self.partition_rows = Path(path), partition_rows
        self.schema = schema.with_metadata(_metadata(schema, metadata))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._parts = 0
        if partition_rows is None:
            self._tmp = tmp_name(self.path)
            _fault_point("parquet_write", self.path)
            self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        else:
            self._tmp = self.path.with_name(f".{self.path.name}.staging")
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp.mkdir()

    def __enter__(self) -> TableSink:  # noqa: PYI034
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, table: pa.Table) -> None:
        try:
            table = table.cast(self.schema)
            self.rows += table.num_rows
            if self.partition_rows is None:
                if table.num_rows:
                    self._writer.write_table(table)
                return
            self._pending.append(table)
            self._flush_parts(final=False)
        except BaseException:
            self.abort()
            raise

    def close(self) -> Path:
        """Finish the table and move it to its final name (replacing an older file or folder)."""
        try:
            if self.partition_rows is None:
                self._writer.close()
                fsync_file(self._tmp)
            else:
                self._flush_parts(final=True)
            replace_path(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop what was written: the table keeps its previous version, and no temporary is left."""
        if self.partition_rows is None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._tmp.unlink(missing_ok=True)
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _flush_parts(self, final: bool) -> None:
        buffered = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
        offset = 0
        while buffered.num_rows - offset >= self.partition_rows or (final and (offset < buffered.num_rows
                                                                              or self._parts == 0)):
            part = buffered.slice(offset, self.partition_rows)
            part_path = self._tmp / f"part-{self._parts:05d}.parquet"
            _fault_point("parquet_write", part_path)
            pq.write_table(part, part_path, compression="zstd")
            self._parts += 1
            offset += part.num_rows
            if part.num_rows == 0:
                break
        self._pending = [buffered.slice(offset)] if offset < buffered.num_rows else []


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing a file or a folder there, whichever kind ``src`` is.

    ``os.replace`` cannot put a folder over a file, nor over a folder that holds files, so the old
    table is first renamed aside, under a temporary name a crash may leave and the next run sweeps.
    """
    if not (dst.is_dir() or (src.is_dir() and (dst.exists() or dst.is_symlink()))):
        os.replace(src, dst)
        return
    old = tmp_name(dst)
    os.replace(dst, old)
    os.replace(src, dst)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()


def _metadata(schema: pa.Schema, extra: dict[str, str] | None) -> dict[bytes, bytes]:
    meta = dict(schema.metadata or {})
    meta.update({b"vadpack_version": __version__.encode(), b"schema_version": SCHEMA_VERSION.encode()})
    for k, v in (extra or {}).items():
        meta[k.encode()] = str(v).encode()
    return meta


def to_table(rows: Iterable[dict] | dict[str, list], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly ``schema`` from a list of row dicts or a dict of columns."""
    if isinstance(rows, dict):
        return pa.Table.from_pydict({name: rows[name] for name in schema.names}, schema=schema)
    return pa.Table.from_pylist(list(rows), schema=schema)


def read_table(path: str | Path, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read a table (a file, or a directory of part files) and cast it to ``schema`` when given.

    Args:
        path: a Parquet file, or a folder of ``*.parquet`` parts (hidden and temporary files skipped).
        schema: the table's explicit schema; the result has exactly these columns and types.
        columns: read only these columns (of ``schema`` when given), for a cheap look at a large table.
    """
    path = Path(path)
    if schema is not None and columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    names = list(schema.names) if schema is not None else columns
    if path.is_dir():
        parts = sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
        if not parts:
            return (schema or pa.schema([])).empty_table()
        tables = [read_file(p, names) for p in parts]
        return pa.concat_tables([t.select(names).cast(schema) if schema else t for t in tables])
    table = read_file(path, names)
    return table.select(schema.names).cast(schema) if schema is not None else table


def read_file(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, through ``ParquetFile`` rather than ``pq.read_table``, whose dataset layer
    imports pandas (about a second of a run that has nothing to do)."""
    with pq.ParquetFile(path) as f:
        return f.read(columns=columns)


def _fault_point(name: str, path: Path) -> None:
    from vadpack.core.faults import maybe_fail

    maybe_fail(name, str(path))
