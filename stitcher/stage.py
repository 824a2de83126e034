"""The stitch stage: recordings + segments + transcripts -> the public tables and human exports.

Token times are made absolute here, once: ``segment start + token offset``, clamped to the segment
and made monotonic non-decreasing. Everything is computed column-wise with numpy/pyarrow, so an
archive of many thousands of recordings stitches in seconds.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.cache import SAMPLE_RATE
from pipeline.config import Config
from pipeline.configtools import stable_hash
from pipeline.tables import (
    DOCUMENTS,
    FAILURES,
    OUTPUT_SCHEMAS,
    RECORDINGS,
    SEGMENTS,
    TOKENS,
    TRANSCRIPTS,
    VAD_RECORDINGS,
    VAD_SEGMENTS,
    read_table,
    to_table,
    write_table,
)
from stitcher.tokens import absolute_token_times

log = logging.getLogger("vadpack")


def output_files(cfg: Config) -> list[Path]:
    out = cfg.output_path
    return [out / f"{name}.parquet" for name in OUTPUT_SCHEMAS]


def stitch_stage(cfg: Config, work: Path) -> dict:
    """Build and write documents, segments, tokens and failures, then the per-recording exports."""
    recordings = read_table(work / "recordings.parquet", RECORDINGS)
    vad_recs = read_table(work / "vad_recordings.parquet", VAD_RECORDINGS)
    segments = read_table(work / "segments.parquet", VAD_SEGMENTS)
    transcripts = read_table(work / "transcripts", TRANSCRIPTS)
    seg_table, tok_table = stitch_segments(segments, transcripts)
    failures = collect_failures(recordings, vad_recs, transcripts)
    documents = build_documents(recordings, vad_recs, seg_table, tok_table, failures, cfg.asr.model)
    if cfg.stitch.punc_model:
        from stitcher.punc import punctuate

        texts = punctuate(documents["text"].to_pylist(), cfg.stitch.punc_model)
        documents = documents.set_column(documents.schema.get_field_index("text"), "text", pa.array(texts))
    meta = {"model": cfg.asr.model, "config_hash": stable_hash(cfg)}
    tables = {"documents": documents, "segments": seg_table, "tokens": tok_table, "failures": failures}
    for name, table in tables.items():
        write_output(table, cfg.output_path, name, cfg.stitch.partition_rows, meta)
    n_exports = export_documents(cfg, documents, seg_table, tok_table)
    return {"documents": documents.num_rows, "segments": seg_table.num_rows, "tokens": tok_table.num_rows,
            "failures": failures.num_rows, "exports": n_exports}


def stitch_segments(segments: pa.Table, transcripts: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Join segments with their transcripts; return the segments and tokens tables, in time order.

    A segment without a transcript row (it failed in asr) keeps its times with null text, so its
    audio is still accounted for; the failure itself is in the failures table.
    """
    segs = segments.sort_by([("recording_id", "ascending"), ("segment_index", "ascending")])
    ok = transcripts.filter(pc.equal(transcripts["status"], "ok"))
    ok = ok.append_column("_pos", pa.array(np.arange(ok.num_rows, dtype=np.int64)))
    keyed = segs.select(["recording_id", "segment_index"]).append_column(
        "_row", pa.array(np.arange(segs.num_rows, dtype=np.int64)))
    joined = keyed.join(ok.select(["recording_id", "segment_index", "_pos"]),
                        keys=["recording_id", "segment_index"], join_type="left outer").sort_by("_row")
    pos = joined["_pos"]
    have = pc.is_valid(pos).to_numpy(zero_copy_only=False)
    sel = ok.take(pc.drop_null(pos))  # transcripts of the segments that have one, in segment order
    start_s = segs["start_sample"].to_numpy() / SAMPLE_RATE
    end_s = segs["end_sample"].to_numpy() / SAMPLE_RATE
    n_tokens = np.zeros(segs.num_rows, dtype=np.int32)
    n_tokens[have] = pc.list_value_length(sel["tokens"]).fill_null(0).to_numpy(zero_copy_only=False)
    seg_table = to_table({
        "recording_id": segs["recording_id"], "segment_index": segs["segment_index"],
        "start_s": start_s, "end_s": end_s, "text": _scatter(segment_texts(sel), have, pa.string()),
        "batch_id": _scatter(sel["batch_id"], have, pa.int32()), "n_tokens": n_tokens,
    }, SEGMENTS)
    rows = np.flatnonzero(have)
    tok_table = build_tokens(sel, segs.take(pa.array(rows)), start_s[rows], end_s[rows])
    return seg_table, tok_table


def segment_texts(sel: pa.Table) -> pa.Array:
    """Each transcript's text: as the asr stage joined it, or joined here from its tokens."""
    from stitcher.text import join_tokens

    text = sel["text"].combine_chunks() if sel.num_rows else pa.array([], pa.string())
    missing = np.flatnonzero(pc.is_null(text).to_numpy(zero_copy_only=False))
    if missing.size == 0:
        return text
    values = text.to_pylist()
    tokens = sel["tokens"].take(pa.array(missing)).to_pylist()
    for i, toks in zip(missing, tokens):
        values[i] = join_tokens(toks or [])
    return pa.array(values, pa.string())


def _scatter(values: pa.Array | pa.ChunkedArray, have: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Spread ``values`` (one per True in ``have``) over len(have) rows, null elsewhere."""
    idx = np.zeros(have.size, dtype=np.int64)
    idx[have] = np.arange(int(have.sum()))
    chunks = [values] if isinstance(values, pa.Array) else values.chunks
    dense = pc.cast(pa.chunked_array(chunks, type=values.type).combine_chunks(), type_)
    return dense.take(pa.array(idx, mask=~have))


def build_tokens(sel: pa.Table, segs: pa.Table, start_s: np.ndarray, end_s: np.ndarray) -> pa.Table:
    """The tokens table with absolute, clamped, monotonic times, computed column-wise.

    ``sel`` holds the transcripts of the segments ``segs``, row for row.
    """
    counts = pc.list_value_length(sel["tokens"]).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    seg_of_tok = np.repeat(np.arange(sel.num_rows, dtype=np.int64), counts)
    rel_start = pc.list_flatten(sel["token_start_ms"]).to_numpy(zero_copy_only=False)
    rel_end = pc.list_flatten(sel["token_end_ms"]).to_numpy(zero_copy_only=False)
    abs_start, abs_end = absolute_token_times(start_s[seg_of_tok], end_s[seg_of_tok], rel_start, rel_end,
                                              counts)
    token_index = np.arange(len(seg_of_tok)) - np.repeat(np.cumsum(counts) - counts, counts)
    take = pa.array(seg_of_tok)
    return to_table({
        "recording_id": segs["recording_id"].take(take), "segment_index": segs["segment_index"].take(take),
        "token_index": token_index.astype(np.int32), "token": pc.list_flatten(sel["tokens"]),
        "start_s": abs_start, "end_s": abs_end,
    }, TOKENS)


def collect_failures(recordings: pa.Table, vad_recs: pa.Table, transcripts: pa.Table) -> pa.Table:
    """Every input that did not make it, and every segment that failed, with the stage and the reason."""
    paths = dict(zip(recordings["recording_id"].to_pylist(), recordings["path"].to_pylist()))
    rows = [{"recording_id": r["recording_id"], "path": r["path"], "stage": "scan", "error": r["error"],
             "segment_index": None} for r in recordings.to_pylist() if r["status"] != "ok"]
    rows += [{"recording_id": r["recording_id"], "path": paths.get(r["recording_id"]), "stage": "vad",
              "error": r["error"], "segment_index": None} for r in vad_recs.to_pylist() if r["status"] != "ok"]
    bad = transcripts.filter(pc.not_equal(transcripts["status"], "ok"))
    rows += [{"recording_id": r["recording_id"], "path": paths.get(r["recording_id"]), "stage": "asr",
              "error": r["error"], "segment_index": r["segment_index"]} for r in bad.to_pylist()]
    rows.sort(key=lambda r: (r["recording_id"], r["stage"], r["segment_index"] or -1))
    return to_table(rows, FAILURES)


def build_documents(recordings: pa.Table, vad_recs: pa.Table, seg_table: pa.Table, tok_table: pa.Table,
                    failures: pa.Table, model: str) -> pa.Table:
    """One row per recording that decoded, also when it has no speech (empty text, n_segments 0)."""
    from stitcher.text import join_segments

    decoded = {r["recording_id"]: r for r in vad_recs.to_pylist() if r["status"] == "ok"}
    seg_groups = group_offsets(seg_table["recording_id"])
    seg_texts = seg_table["text"].to_pylist()
    tok_counts = {rid: hi - lo for rid, (lo, hi) in group_offsets(tok_table["recording_id"]).items()}
    partial = set(failures.filter(pc.equal(failures["stage"], "asr"))["recording_id"].to_pylist())
    rows = []
    for rec in recordings.to_pylist():
        rid = rec["recording_id"]
        v = decoded.get(rid)
        if rec["status"] != "ok" or v is None:
            continue  # it is in the failures table
        lo, hi = seg_groups.get(rid, (0, 0))
        speech_s = v["speech_samples"] / SAMPLE_RATE
        n_tok = tok_counts.get(rid, 0)
        rows.append({"recording_id": rid, "path": rec["path"], "duration_s": v["n_samples"] / SAMPLE_RATE,
                     "speech_s": speech_s, "n_segments": v["n_segments"], "n_tokens": n_tok,
                     "text": join_segments([t or "" for t in seg_texts[lo:hi]]),
                     "words_per_minute": n_tok / (speech_s / 60) if speech_s > 0 else 0.0,
                     "model": model, "status": "partial" if rid in partial else "ok", "warning": v["warning"]})
    return to_table(rows, DOCUMENTS)


def group_offsets(col: pa.ChunkedArray) -> dict[str, tuple[int, int]]:
    """Row ranges [lo, hi) of each value of a column sorted by that value."""
    if len(col) == 0:
        return {}
    runs = pc.run_end_encode(col.combine_chunks())
    ends = runs.run_ends.to_numpy()
    starts = np.concatenate([[0], ends[:-1]])
    return dict(zip(runs.values.to_pylist(), zip(starts.tolist(), ends.tolist())))


def write_output(table: pa.Table, out_dir: Path, name: str, partition_rows: int | None,
                 meta: dict[str, str]) -> None:
    """Write one public table: a single file, or with ``partition_rows`` a folder of part files."""
    target = out_dir / f"{name}.parquet"
    if partition_rows is None:
        if target.is_dir():
            shutil.rmtree(target)
        write_table(table, target, meta)
        return
    staging = out_dir / f".{name}.parquet.staging"
    shutil.rmtree(staging, ignore_errors=True)
    for k, offset in enumerate(range(0, max(table.num_rows, 1), partition_rows)):
        write_table(table.slice(offset, partition_rows), staging / f"part-{k:05d}.parquet", meta)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    staging.rename(target)


def export_documents(cfg: Config, documents: pa.Table, seg_table: pa.Table, tok_table: pa.Table) -> int:
    """Write the human-readable exports (srt, vtt, json, txt) of every document, one at a time."""
    from stitcher.export import write_document_exports

    if not cfg.stitch.formats:
        return 0
    seg_groups = group_offsets(seg_table["recording_id"])
    tok_groups = group_offsets(tok_table["recording_id"])
    n = 0
    for doc in documents.to_pylist():
        rid = doc["recording_id"]
        s_lo, s_hi = seg_groups.get(rid, (0, 0))
        t_lo, t_hi = tok_groups.get(rid, (0, 0))
        n += write_document_exports(cfg.output_path, cfg.stitch.formats, doc,
                                    seg_table.slice(s_lo, s_hi - s_lo).to_pylist(),
                                    tok_table.slice(t_lo, t_hi - t_lo).to_pylist(), cfg.stitch.sentence_gap_s)
    return n
