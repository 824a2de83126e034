"""The stitch stage: recordings + segments + transcripts (+ speakers) -> the public tables and exports.

Token times are made absolute here, once: ``segment start + token offset``, clamped to the segment
and made monotonic non-decreasing. Speakers (when the stage ran) are placed here too: a token's at
its midpoint, a segment's by the most time, turns from consecutive tokens of one speaker (see
``stitcher.speakers``). Everything is computed column-wise with numpy/pyarrow, so an archive of
many thousands of recordings stitches in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.dataset import Manifest, manifest_path, read_manifest, sweep
from vadpack.core.tables import (
    DOCUMENTS,
    FAILURES,
    OUTPUT_SCHEMAS,
    SEGMENTS,
    SPEAKERS,
    TOKENS,
    TURNS,
    to_table,
)
from vadpack.core.text import join_tokens
from vadpack.stitcher.config import StitchConfig
from vadpack.stitcher.speakers import (
    SpeakerLabels,
    build_turns,
    segment_speakers,
    segment_turns,
    speakers_table,
    token_speakers,
    turn_overlap,
)
from vadpack.stitcher.tokens import absolute_token_times
from vadpack.stitcher.types import StitchInputs, StitchSummary
from vadpack.stitcher.words import words_per_segment

log = logging.getLogger("vadpack")


def output_files(output_dir: Path) -> list[Path]:
    """What a change to stitch's output changes: the output folder's manifest (see ``core.dataset``)."""
    return [manifest_path(Path(output_dir))]


def stitch_stage(inputs: StitchInputs, cfg: StitchConfig, output_dir: Path, model: str,
                 config_hash: str) -> StitchSummary:
    """Bring the public tables and the exports up to date with ``inputs``, rewriting only what changed.

    Each recording's rows depend on its own inputs only (its scan and vad rows, its segments, its
    stored results, its export name). Stitch compares a digest of those with the one it recorded
    last time, and rebuilds the recordings that are new or changed, removes those that left, and
    rewrites only the part files of the buckets they hash to (``core.dataset``). A run from nothing
    is the same process with every recording new, a group of buckets at a time, so memory follows
    the size of a group, not of the archive.

    Args:
        inputs: the work tables stitch reads, and where to load results from.
        cfg: the stitch options.
        output_dir: where the public tables and the exports go.
        model: the asr model as configured, recorded in documents and table metadata.
        config_hash: the hash of the whole run's config, recorded in the metadata of the parts written.

    Returns:
        Counts: rows of every table (documents, segments, tokens, words, turns, speakers,
        failures), recordings rebuilt and removed, export files written and removed, parts written.
    """
    from vadpack.stitcher.incremental import plan_stitch, run_plan

    output_dir = Path(output_dir)
    previous = read_manifest(output_dir)
    if previous is not None:
        sweep(output_dir, previous)  # what a killed run left
    plan = plan_stitch(inputs, cfg, output_dir, previous, model)
    if plan.nothing_to_do:
        assert previous is not None
        return summary_counts(previous, plan, exports=0, exports_removed=0, parts=0)
    meta = {"model": model, "config_hash": config_hash}
    manifest, written = run_plan(plan, inputs, output_dir, previous, meta,
                                 build=lambda sub: build_tables(sub, cfg, model),
                                 export=lambda tables, files: write_group_exports(tables, output_dir, cfg, files))
    return summary_counts(manifest, plan, *written)


def stale_export_files(output_dir: Path) -> list[Path]:
    """Export files under ``output_dir`` that no recording of the last complete stitch owns ([] before one)."""
    from vadpack.core.dataset import read_state
    from vadpack.stitcher.config import FORMATS
    from vadpack.stitcher.export import stale_exports
    from vadpack.stitcher.incremental import STATE

    manifest = read_manifest(output_dir)
    if manifest is None:
        return []
    state = read_state(output_dir, manifest, STATE)
    owned = {f for files in state["exports"].to_pylist() for f in files or ()}
    return list(stale_exports(output_dir, FORMATS, owned))


def summary_counts(manifest: Manifest, plan: object, exports: int, exports_removed: int, parts: int) -> StitchSummary:
    """The stitch stage's summary: rows of every table, and what this run rewrote."""
    rows = {name: manifest.total_rows(name) for name in OUTPUT_SCHEMAS}
    return StitchSummary(
        documents=rows.pop("documents"), segments=rows.pop("segments"), failures=rows.pop("failures"), tables=rows,
        exports=exports, exports_removed=exports_removed, recordings_rebuilt=len(getattr(plan, "dirty", ())),
        recordings_removed=len(getattr(plan, "gone", ())), parts_written=parts)


def build_tables(inputs: StitchInputs, cfg: StitchConfig, model: str) -> dict[str, pa.Table]:
    """Every public table of the recordings of ``inputs`` (whose ``results`` are loaded), in memory.

    Rows come sorted by recording id (then segment, token, word, turn order).
    """
    labels = SpeakerLabels.from_rows(inputs.speakers) if inputs.speakers is not None else None
    assert inputs.results is not None
    joined = join_transcripts(inputs.segments, inputs.results)
    seg_table = joined.segments_table()
    if labels is not None:
        seg_table = _set(seg_table, "speaker", segment_speakers(seg_table, labels.spans, SAMPLE_RATE))
    failures = collect_failures(inputs.recordings, inputs.vad_recordings, inputs.results,
                                speaker_failures(labels, joined.segs))
    documents = build_documents(inputs.recordings, inputs.vad_recordings, seg_table, failures, model, labels)
    if cfg.punc_model:
        from vadpack.stitcher.punc import punctuate

        documents = _set(documents, "text", pa.array(punctuate(documents["text"].to_pylist(), cfg.punc_model)))
    tables = chunk_tables(joined.tokens_table(0, seg_table.num_rows), seg_table, labels)
    seg_table = _set(seg_table, "n_words", words_per_segment(tables["words"], seg_table).cast(pa.int32()))
    documents = with_word_counts(documents, seg_table)
    return {"documents": documents.sort_by("recording_id"), "segments": seg_table, **tables,
            "failures": failures}


def write_group_exports(tables: dict[str, pa.Table], output_dir: Path, cfg: StitchConfig,
                        exports: dict[str, list[str]]) -> int:
    """Write the export files of the documents of one group; return how many.

    Rendering is Python work per token (sentences, text), so on Linux the documents are shared out to
    forked children (up to ``MAX_EXPORT_WORKERS`` processes with this one); a forked
    child needs neither pickling nor the caller's ``if __name__ == "__main__"`` guard. Elsewhere, or
    for a single document, they are written here, one after another.
    """
    if not cfg.formats or tables["documents"].num_rows == 0:
        return 0
    docs = tables["documents"]
    workers = min(export_workers(), docs.num_rows)
    if workers < 2:
        return _write_exports_share(tables, output_dir, cfg, exports, 0, 1)
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_write_exports_share, args=(tables, output_dir, cfg, exports, k, workers),
                            name=f"vadpack-exports-{k}", daemon=True) for k in range(1, workers)]
    for child in children:
        child.start()
    try:
        n = _write_exports_share(tables, output_dir, cfg, exports, 0, workers)
    finally:
        for child in children:
            child.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed:
        raise RuntimeError(f"stitch: {len(failed)} export worker(s) failed (exit codes {failed}); see the log above")
    return n + sum(len(exports[r]) for k, r in enumerate(docs["recording_id"].to_pylist()) if k % workers)


MAX_EXPORT_WORKERS = 4


def export_workers() -> int:
    """Processes that write exports: the CPUs this process may use (at most ``MAX_EXPORT_WORKERS``) on
    Linux; 1 elsewhere (Windows has no ``fork``, and on macOS a forked child of a process that loaded
    the system's frameworks, as torch does, can crash, which is why Python's default there is spawn)."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_EXPORT_WORKERS, cpus))


def _write_exports_share(tables: dict[str, pa.Table], output_dir: Path, cfg: StitchConfig,
                         exports: dict[str, list[str]], share: int, shares: int) -> int:
    """Write the exports of documents ``share``, ``share + shares``, ... of a group; return how many."""
    from vadpack.stitcher.export import write_document_tables

    docs, segs, toks = tables["documents"], tables["segments"], tables["tokens"]
    seg_groups, tok_groups = group_offsets(segs["recording_id"]), group_offsets(toks["recording_id"])
    n = 0
    for k in range(share, docs.num_rows, shares):
        doc = docs.slice(k, 1).to_pylist()[0]
        rid = doc["recording_id"]
        s_lo, s_hi = seg_groups.get(rid, (0, 0))
        t_lo, t_hi = tok_groups.get(rid, (0, 0))
        n += write_document_tables(output_dir, exports[rid], doc, segs.slice(s_lo, s_hi - s_lo),
                                   toks.slice(t_lo, t_hi - t_lo), cfg.sentence_gap_s)
    return n


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), table.schema.field(name), values)


def with_word_counts(documents: pa.Table, seg_table: pa.Table) -> pa.Table:
    """Documents with ``n_words`` and ``words_per_minute`` (words per minute of speech) filled in."""
    groups = group_offsets(seg_table["recording_id"])
    words = np.concatenate([[0], np.cumsum(seg_table["n_words"].to_numpy(zero_copy_only=False))])
    n_words = np.array([words[groups[r][1]] - words[groups[r][0]] if r in groups else 0
                        for r in documents["recording_id"].to_pylist()], dtype=np.int64)
    speech_min = documents["speech_s"].to_numpy(zero_copy_only=False) / 60
    wpm = np.divide(n_words, speech_min, out=np.zeros(len(n_words)), where=speech_min > 0)
    documents = documents.set_column(documents.schema.get_field_index("n_words"), "n_words",
                                     pa.array(n_words, pa.int32()))
    return documents.set_column(documents.schema.get_field_index("words_per_minute"), "words_per_minute",
                                pa.array(wpm, pa.float64()))


@dataclass(frozen=True)
class Joined:
    """Segments in time order and, row for row, the transcript of each segment that has one.

    Attributes:
        segs: the vad segments sorted by (recording_id, segment_index).
        has_result: per segment, whether it has an ``ok`` transcript.
        results: the transcripts of the segments with ``has_result``, in segment order.
    """

    segs: pa.Table
    has_result: np.ndarray
    results: pa.Table

    @property
    def start_s(self) -> np.ndarray:
        return self.segs["start_sample"].to_numpy() / SAMPLE_RATE

    @property
    def end_s(self) -> np.ndarray:
        return self.segs["end_sample"].to_numpy() / SAMPLE_RATE

    def segments_table(self) -> pa.Table:
        """The public segments table. A segment that failed in asr keeps its times with null text."""
        n_tokens = np.zeros(self.segs.num_rows, dtype=np.int32)
        counts = pc.list_value_length(self.results["tokens"]).fill_null(0)
        n_tokens[self.has_result] = counts.to_numpy(zero_copy_only=False)
        return to_table({
            "recording_id": self.segs["recording_id"], "segment_index": self.segs["segment_index"],
            "start_s": self.start_s, "end_s": self.end_s,
            "text": _scatter(self.results["text"], self.has_result, pa.string()),
            "batch_id": _scatter(self.results["batch_id"], self.has_result, pa.int32()), "n_tokens": n_tokens,
            "n_words": np.zeros(self.segs.num_rows, dtype=np.int32),  # counted as the words are made
            "speaker": pa.nulls(self.segs.num_rows, pa.string()),
            **{name: _scatter(self.results[name], self.has_result, pa.string())
               for name in ("language", "emotion", "event")},
        }, SEGMENTS)

    def tokens_table(self, lo: int, hi: int) -> pa.Table:
        """The tokens of segments [lo, hi) (in time order), with absolute times."""
        rows = np.flatnonzero(self.has_result[lo:hi]) + lo
        result_rows = np.cumsum(self.has_result)[rows] - 1
        return build_tokens(self.results.take(pa.array(result_rows, pa.int64())),
                            self.segs.take(pa.array(rows, pa.int64())), self.start_s[rows], self.end_s[rows])


def join_transcripts(segments: pa.Table, transcripts: pa.Table) -> Joined:
    """Match each segment with its ``ok`` transcript (a hash join on recording and index)."""
    segs = segments.sort_by([("recording_id", "ascending"), ("segment_index", "ascending")])
    ok = transcripts.filter(pc.equal(transcripts["status"], "ok"))
    ok = ok.append_column("_pos", pa.array(np.arange(ok.num_rows, dtype=np.int64)))
    keyed = segs.select(["recording_id", "segment_index"]).append_column(
        "_row", pa.array(np.arange(segs.num_rows, dtype=np.int64)))
    joined = keyed.join(ok.select(["recording_id", "segment_index", "_pos"]),
                        keys=["recording_id", "segment_index"], join_type="left outer").sort_by("_row")
    pos = joined["_pos"]
    return Joined(segs, pc.is_valid(pos).to_numpy(zero_copy_only=False), ok.take(pc.drop_null(pos)))


def _scatter(values: pa.Array | pa.ChunkedArray, have: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Spread ``values`` (one per True in ``have``) over len(have) rows, null elsewhere."""
    idx = np.zeros(have.size, dtype=np.int64)
    idx[have] = np.arange(int(have.sum()))
    chunks = [values] if isinstance(values, pa.Array) else values.chunks
    dense = pc.cast(pa.chunked_array(chunks, type=values.type).combine_chunks(), type_)
    return dense.take(pa.array(idx, mask=~have))


def build_tokens(results: pa.Table, segs: pa.Table, start_s: np.ndarray, end_s: np.ndarray) -> pa.Table:
    """The tokens table with absolute, clamped, monotonic times, computed column-wise.

    ``results`` holds the transcripts of the segments ``segs``, row for row.
    """
    counts = pc.list_value_length(results["tokens"]).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    seg_of_tok = np.repeat(np.arange(results.num_rows, dtype=np.int64), counts)
    rel_start = pc.list_flatten(results["token_start_ms"]).to_numpy(zero_copy_only=False)
    rel_end = pc.list_flatten(results["token_end_ms"]).to_numpy(zero_copy_only=False)
    abs_start, abs_end = absolute_token_times(start_s[seg_of_tok], end_s[seg_of_tok], rel_start, rel_end,
                                              counts)
    token_index = np.arange(len(seg_of_tok)) - np.repeat(np.cumsum(counts) - counts, counts)
    take = pa.array(seg_of_tok)
    return to_table({
        "recording_id": segs["recording_id"].take(take), "segment_index": segs["segment_index"].take(take),
        "token_index": token_index.astype(np.int32), "token": pc.list_flatten(results["tokens"]),
        "start_s": abs_start, "end_s": abs_end, "speaker": pa.nulls(len(seg_of_tok), pa.string()),
    }, TOKENS)


def collect_failures(recordings: pa.Table, vad_recs: pa.Table, transcripts: pa.Table,
                     speaker_rows: list[dict] = ()) -> pa.Table:
    """Every input that did not make it, and every segment that failed, with the stage and the reason.

    ``speaker_rows`` are the speakers stage's failures (recording_id, error, segment_index).
    """
    paths = dict(zip(recordings["recording_id"].to_pylist(), recordings["path"].to_pylist()))
    rows = [{"recording_id": r["recording_id"], "path": r["path"], "stage": "scan", "error": r["error"],
             "segment_index": None} for r in recordings.to_pylist() if r["status"] != "ok"]
    rows += [{"recording_id": r["recording_id"], "path": paths.get(r["recording_id"]), "stage": "vad",
              "error": r["error"], "segment_index": None} for r in vad_recs.to_pylist() if r["status"] != "ok"]
    bad = transcripts.filter(pc.not_equal(transcripts["status"], "ok"))
    rows += [{"recording_id": r["recording_id"], "path": paths.get(r["recording_id"]), "stage": "asr",
              "error": r["error"], "segment_index": r["segment_index"]} for r in bad.to_pylist()]
    rows += [{**r, "path": paths.get(r["recording_id"]), "stage": "speakers"} for r in speaker_rows]
    rows.sort(key=lambda r: (r["recording_id"], r["stage"], -1 if r["segment_index"] is None else r["segment_index"]))
    return to_table(rows, FAILURES)


def speaker_failures(labels: SpeakerLabels | None, segs: pa.Table) -> list[dict]:
    """The speakers stage's failures as failure rows: a window names the segment it lies in, a whole
    recording none."""
    if labels is None or labels.failed.num_rows == 0:
        return []
    groups = group_offsets(segs["recording_id"])
    starts = segs["start_sample"].to_numpy(zero_copy_only=False)
    rows = []
    for r in labels.failed.to_pylist():
        index = None
        if r["start_sample"] is not None and r["recording_id"] in groups:
            lo, hi = groups[r["recording_id"]]
            row = lo + int(np.searchsorted(starts[lo:hi], r["start_sample"], side="right")) - 1
            index = int(segs["segment_index"][max(row, lo)].as_py())
        rows.append({"recording_id": r["recording_id"], "error": r["error"], "segment_index": index})
    return rows


def build_documents(recordings: pa.Table, vad_recs: pa.Table, seg_table: pa.Table, failures: pa.Table,
                    model: str, labels: SpeakerLabels | None = None) -> pa.Table:
    """One row per recording that decoded, also when it has no speech (empty text, n_segments 0).

    ``n_speakers`` is null without speakers (``labels`` None) and for a recording the speakers stage
    failed on; 0 for one without speech.
    """
    from vadpack.core.text import join_segments

    decoded = {r["recording_id"]: r for r in vad_recs.to_pylist() if r["status"] == "ok"}
    languages = recording_languages(seg_table)
    seg_groups = group_offsets(seg_table["recording_id"])
    seg_texts = seg_table["text"].to_pylist()
    seg_tokens = np.concatenate([[0], np.cumsum(seg_table["n_tokens"].to_numpy(zero_copy_only=False))])
    partial = set(failures.filter(pc.equal(failures["stage"], "asr"))["recording_id"].to_pylist())
    rows = []
    for rec in recordings.to_pylist():
        rid = rec["recording_id"]
        v = decoded.get(rid)
        if rec["status"] != "ok" or v is None:
            continue  # it is in the failures table
        lo, hi = seg_groups.get(rid, (0, 0))
        speech_s = v["speech_samples"] / SAMPLE_RATE
        n_tok = int(seg_tokens[hi] - seg_tokens[lo])
        rows.append({"recording_id": rid, "path": rec["path"], "duration_s": v["n_samples"] / SAMPLE_RATE,
                     "speech_s": speech_s, "n_segments": v["n_segments"], "n_tokens": n_tok, "n_words": 0,
                     "text": join_segments([t or "" for t in seg_texts[lo:hi]]), "words_per_minute": 0.0,
                     "model": model, "status": "partial" if rid in partial else "ok", "warning": v["warning"],
                     "n_speakers": None, "languages": languages.get(rid, [])})
    if labels is not None:
        for row, n in zip(rows, labels.n_speakers([r["recording_id"] for r in rows])):
            row["n_speakers"] = n
    return to_table(rows, DOCUMENTS)


def recording_languages(seg_table: pa.Table) -> dict[str, list[str]]:
    """Per recording, the languages its segments were heard in, most speech seconds first.

    Ties go to the language heard first. ``nospeech`` (SenseVoice heard no speech) and null (the
    model does not tell, or the segment failed) are left out.
    """
    from vadpack.stitcher.export import NO_LANGUAGE

    heard = seg_table.filter(pc.and_(pc.is_valid(seg_table["language"]),
                                     pc.not_equal(seg_table["language"], NO_LANGUAGE)))
    if heard.num_rows == 0:
        return {}
    heard = heard.append_column("speech_s", pc.subtract(heard["end_s"], heard["start_s"]))
    totals = heard.group_by(["recording_id", "language"]).aggregate([("speech_s", "sum"),
                                                                     ("segment_index", "min")])
    totals = totals.sort_by([("recording_id", "ascending"), ("speech_s_sum", "descending"),
                             ("segment_index_min", "ascending")])
    out: dict[str, list[str]] = {}
    for rid, language in zip(totals["recording_id"].to_pylist(), totals["language"].to_pylist()):
        out.setdefault(rid, []).append(language)
    return out


def group_offsets(col: pa.ChunkedArray) -> dict[str, tuple[int, int]]:
    """Row ranges [lo, hi) of each value of a column sorted by that value."""
    if len(col) == 0:
        return {}
    runs = pc.run_end_encode(col.combine_chunks())
    ends = runs.run_ends.to_numpy()
    starts = np.concatenate([[0], ends[:-1]])
    return dict(zip(runs.values.to_pylist(), zip(starts.tolist(), ends.tolist())))


def chunk_tables(tokens: pa.Table, segments: pa.Table, labels: SpeakerLabels | None) -> dict[str, pa.Table]:
    """The tokens (with speakers), words, turns and speakers tables of some recordings, from their
    tokens and segments (both sorted by recording)."""
    from vadpack.stitcher.words import tokens_to_words

    if labels is None:
        turns, speakers = segment_turns(segments), SPEAKERS.empty_table()
    elif segments.num_rows == 0:
        turns, speakers = TURNS.empty_table(), SPEAKERS.empty_table()
    else:
        rids = segments["recording_id"]
        first, last = rids[0].as_py(), rids[-1].as_py()
        spans = labels.chunk(first, last)
        tokens = _set(tokens, "speaker", token_speakers(tokens, spans, SAMPLE_RATE))
        turns = build_turns(tokens, tokens["speaker"], join_tokens)
        turns = _set(turns, "overlap", turn_overlap(turns, labels.overlap_chunk(first, last), SAMPLE_RATE))
        speakers = speakers_table(spans, turns, SAMPLE_RATE)
    return {"tokens": tokens, "words": tokens_to_words(tokens), "turns": turns, "speakers": speakers}
