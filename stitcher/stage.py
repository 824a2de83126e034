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
from pipeline.tables import (DOCUMENTS, FAILURES, OUTPUT_SCHEMAS, RECORDINGS, SEGMENTS, TOKENS, TRANSCRIPTS,
                             VAD_RECORDINGS, VAD_SEGMENTS, read_table, to_table, write_table)
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
    from stitcher.text import join_tokens

    segs = segments.sort_by([("recording_id", "ascending"), ("segment_index", "ascending")])
    ok = transcripts.filter(pc.equal(transcripts["status"], "ok"))
    keyed = {(r, i): k for k, (r, i) in enumerate(zip(ok["recording_id"].to_pylist(),
                                                      ok["segment_index"].to_pylist()))}
    rec_ids = segs["recording_id"].to_pylist()
    seg_idx = segs["segment_index"].to_pylist()
    rows = [keyed.get(key) for key in zip(rec_ids, seg_idx)]
    start_s = segs["start_sample"].to_numpy() / SAMPLE_RATE
    end_s = segs["end_sample"].to_numpy() / SAMPLE_RATE
    tokens_col = ok["tokens"].to_pylist()
    batch_col = ok["batch_id"].to_pylist()
    texts = [None if k is None else join_tokens(tokens_col[k]) for k in rows]
    n_tokens = [0 if k is None else len(tokens_col[k]) for k in rows]
    seg_table = to_table({"recording_id": rec_ids, "segment_index": seg_idx, "start_s": start_s,
                          "end_s": end_s, "text": texts,
                          "batch_id": [None if k is None else batch_col[k] for k in rows],
                          "n_tokens": n_tokens}, SEGMENTS)
    tok_table = build_tokens(ok, rows, rec_ids, seg_idx, start_s, end_s)
    return seg_table, tok_table


def build_tokens(ok: pa.Table, rows: list[int | None], rec_ids: list[str], seg_idx: list[int],
                 start_s: np.ndarray, end_s: np.ndarray) -> pa.Table:
    """The tokens table with absolute, clamped, monotonic times, computed column-wise."""
    have = [i for i, k in enumerate(rows) if k is not None]
    take = pa.array([rows[i] for i in have], pa.int64())
    sel = ok.take(take) if len(have) else ok.slice(0, 0)
    counts = pc.list_value_length(sel["tokens"]).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    seg_of_tok = np.repeat(np.asarray(have, dtype=np.int64), counts)
    rel_start = pc.list_flatten(sel["token_start_ms"]).to_numpy(zero_copy_only=False)
    rel_end = pc.list_flatten(sel["token_end_ms"]).to_numpy(zero_copy_only=False)
    abs_start, abs_end = absolute_token_times(start_s[seg_of_tok], end_s[seg_of_tok], rel_start, rel_end,
                                              counts)
    token_index = np.arange(len(seg_of_tok)) - np.repeat(np.cumsum(counts) - counts, counts)
    return to_table({
        "recording_id": pa.array(rec_ids, pa.string()).take(pa.array(seg_of_tok)),
        "segment_index": pa.array(seg_idx, pa.int32()).take(pa.array(seg_of_tok)),
        "token_index": token_index.astype(np.int32),
        "token": pc.list_flatten(sel["tokens"]),
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
    seg_texts: dict[str, list[str]] = {}
    for rid, text in zip(seg_table["recording_id"].to_pylist(), seg_table["text"].to_pylist()):
        seg_texts.setdefault(rid, []).append(text or "")
    tok_counts = _value_counts(tok_table["recording_id"])
    partial = set(failures.filter(pc.equal(failures["stage"], "asr"))["recording_id"].to_pylist())
    rows = []
    for rec in recordings.to_pylist():
        v = decoded.get(rec["recording_id"])
        if rec["status"] != "ok" or v is None:
            continue
        duration_s = v["n_samples"] / SAMPLE_RATE
        speech_s = v["speech_samples"] / SAMPLE_RATE
        n_tok = tok_counts.get(rec["recording_id"], 0)
        rows.append({"recording_id": rec["recording_id"], "path": rec["path"], "duration_s": duration_s,
                     "speech_s": speech_s, "n_segments": v["n_segments"], "n_tokens": n_tok,
                     "text": join_segments(seg_texts.get(rec["recording_id"], [])),
                     "words_per_minute": n_tok / (speech_s / 60) if speech_s > 0 else 0.0,
                     "model": model, "status": "partial" if rec["recording_id"] in partial else "ok",
                     "warning": v["warning"]})
    return to_table(rows, DOCUMENTS)


def _value_counts(col: pa.ChunkedArray) -> dict[str, int]:
    if len(col) == 0:
        return {}
    vc = pc.value_counts(col)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


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
    """Write the human-readable exports (srt, vtt, json, txt) of every document."""
    from stitcher.export import write_document_exports

    if not cfg.stitch.formats:
        return 0
    seg_by_rec = _group_rows(seg_table)
    tok_by_rec = _group_rows(tok_table)
    n = 0
    for doc in documents.to_pylist():
        rid = doc["recording_id"]
        n += write_document_exports(cfg.output_path, cfg.stitch.formats, doc, seg_by_rec.get(rid, []),
                                    tok_by_rec.get(rid, []), cfg.stitch.sentence_gap_s)
    return n


def _group_rows(table: pa.Table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(row["recording_id"], []).append(row)
    return out
