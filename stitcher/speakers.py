"""Speaker columns and the turns and speakers tables, from the speakers stage's spans (pure functions).

numpy and pyarrow only: nothing here imports the speakers stage or the pipeline, so the stitcher can
call these on tables it has read. ``spans`` holds the speakers stage's spans per recording:
recording_id, start_sample, end_sample, speaker, inside speech segments, not overlapping one another
within a recording. Times of tokens and segments are absolute seconds, converted to samples once
with ``sample_rate``.

- a token's speaker is the span holding the middle of the token (null when no span does);
- a segment's speaker is the one that covers most of its time (null when no span overlaps it; a
  tie goes to the speaker who starts first in the segment);
- a turn is a run of consecutive tokens of one recording with one speaker: split at every speaker
  change, even inside a VAD segment, and joined across segments while the speaker stays the same;
  tokens without a speaker make one turn per segment, as they would without speakers;
- without speakers, each segment is one turn (:func:`segment_turns`);
- a turn's ``overlap`` is the seconds of it that the segmentation model calls overlapped speech
  (:func:`turn_overlap`), null for a recording the model did not run on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.tables import SPEAKERS, TURNS

# Per-recording offset that turns (recording, sample) into one sortable int64: 2**40 samples is
# two years at 16 kHz, and 2**22 recordings still fit.
_REC_STRIDE = np.int64(1) << 40


class _SpanIndex:
    """Spans sorted by (recording, start) as int64 keys, for vectorised lookups."""

    def __init__(self, spans: pa.Table) -> None:
        spans = spans.sort_by([("recording_id", "ascending"), ("start_sample", "ascending")])
        self.recordings = pc.unique(spans["recording_id"]).to_pylist()
        self.code = {r: i for i, r in enumerate(self.recordings)}
        rec = self.codes(spans["recording_id"].to_pylist())
        self.start = rec * _REC_STRIDE + spans["start_sample"].to_numpy(zero_copy_only=False).astype(np.int64)
        self.end = rec * _REC_STRIDE + spans["end_sample"].to_numpy(zero_copy_only=False).astype(np.int64)
        self.speaker = np.array(spans["speaker"].to_pylist(), dtype=object)

    def codes(self, recording_ids: Sequence[str]) -> np.ndarray:
        """Each recording's code; -1 for a recording without spans."""
        return np.array([self.code.get(r, -1) for r in recording_ids], dtype=np.int64)

    def keys(self, recording_ids: Sequence[str], times_s: np.ndarray,
             sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, known): int64 keys of (recording, time), and whether the recording has spans."""
        rec = self.codes(recording_ids)
        samples = np.round(np.asarray(times_s, dtype=np.float64) * sample_rate).astype(np.int64)
        return np.maximum(rec, 0) * _REC_STRIDE + samples, rec >= 0


def speakers_at(recording_ids: Sequence[str], times_s: np.ndarray, spans: pa.Table, sample_rate: int) -> pa.Array:
    """The speaker whose span holds each (recording, time), or null.

    Args:
        recording_ids: one recording per query.
        times_s: one time per query, seconds from the start of the recording.
        spans: the speakers stage's spans.
        sample_rate: the rate of the spans' sample offsets.
    """
    index = _SpanIndex(spans)
    keys, known = index.keys(recording_ids, times_s, sample_rate)
    pos = np.searchsorted(index.start, keys, side="right") - 1
    inside = known & (pos >= 0)
    inside[inside] &= keys[inside] < index.end[pos[inside]]
    out = np.full(len(keys), None, dtype=object)
    out[inside] = index.speaker[pos[inside]]
    return pa.array(out.tolist(), pa.string())


def token_speakers(tokens: pa.Table, spans: pa.Table, sample_rate: int) -> pa.Array:
    """The speaker of each token of a tokens table (recording_id, start_s, end_s), by its midpoint."""
    mid = (tokens["start_s"].to_numpy(zero_copy_only=False) + tokens["end_s"].to_numpy(zero_copy_only=False)) / 2
    return speakers_at(tokens["recording_id"].to_pylist(), mid, spans, sample_rate)


def segment_speakers(segments: pa.Table, spans: pa.Table, sample_rate: int) -> pa.Array:
    """The speaker who covers most of each segment (recording_id, start_s, end_s), or null.

    Overlap is summed per speaker, so a speaker with two spans in a segment counts both.
    """
    index = _SpanIndex(spans)
    rids = segments["recording_id"].to_pylist()
    lo_key, known = index.keys(rids, segments["start_s"].to_numpy(zero_copy_only=False), sample_rate)
    hi_key, _ = index.keys(rids, segments["end_s"].to_numpy(zero_copy_only=False), sample_rate)
    first = np.searchsorted(index.end, lo_key, side="right")  # first span ending after the segment start
    last = np.searchsorted(index.start, hi_key, side="left")  # spans starting before the segment end
    counts = np.where(known, np.maximum(last - first, 0), 0)
    seg = np.repeat(np.arange(len(rids)), counts)
    span = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    overlap = np.minimum(index.end[span], hi_key[seg]) - np.maximum(index.start[span], lo_key[seg])
    out = np.full(len(rids), None, dtype=object)
    for s, name in _majority(seg, index.speaker[span], overlap, index.start[span]).items():
        out[s] = name
    return pa.array(out.tolist(), pa.string())


def _majority(seg: np.ndarray, speaker: np.ndarray, overlap: np.ndarray, start: np.ndarray) -> dict[int, str]:
    """Per segment, the speaker with the most overlap (ties: the one whose first span starts first)."""
    totals: dict[tuple[int, str], list[int]] = {}
    for s, name, ov, st in zip(seg.tolist(), speaker.tolist(), overlap.tolist(), start.tolist()):
        entry = totals.setdefault((s, name), [0, st])
        entry[0] += ov
    best: dict[int, tuple[int, int, str]] = {}
    for (s, name), (total, st) in totals.items():
        candidate = (-total, st, name)
        if total > 0 and (s not in best or candidate < best[s]):
            best[s] = candidate
    return {s: name for s, (_, _, name) in best.items()}


def build_turns(tokens: pa.Table, speakers: pa.Array | pa.ChunkedArray,
                join: Callable[[list[str]], str]) -> pa.Table:
    """The turns table from tokens in time order and each token's speaker.

    Args:
        tokens: recording_id, segment_index, token, start_s, end_s; sorted by recording, then time
            (the tokens table's own order).
        speakers: one speaker (or null) per token, e.g. from :func:`token_speakers`.
        join: turns a turn's tokens into its text (pass the project's script-aware joiner, which
            merges subword pieces and spaces words by script).

    Returns:
        ``TURNS`` rows: a new turn at each recording or speaker change, and at each segment change
        where the speaker is null; ``turn_index`` counts from 0 in each recording; start and end
        are those of the turn's first and last token.
    """
    n = tokens.num_rows
    if n == 0:
        return TURNS.empty_table()
    rec = np.array(tokens["recording_id"].to_pylist(), dtype=object)
    spk = np.array(speakers.to_pylist(), dtype=object)
    seg = tokens["segment_index"].to_numpy(zero_copy_only=False)
    unlabelled = np.array([s is None for s in spk], dtype=bool)
    new = np.ones(n, dtype=bool)
    # Unlabelled tokens (a recording the speakers stage failed on) never join across segments.
    new[1:] = (rec[1:] != rec[:-1]) | (spk[1:] != spk[:-1]) | ((seg[1:] != seg[:-1]) & unlabelled[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    new_rec = np.ones(len(starts), dtype=bool)
    new_rec[1:] = rec[starts[1:]] != rec[starts[:-1]]
    turn_index = np.arange(len(starts)) - np.maximum.accumulate(np.where(new_rec, np.arange(len(starts)), 0))
    words = tokens["token"].to_pylist()
    t0 = tokens["start_s"].to_numpy(zero_copy_only=False)
    t1 = tokens["end_s"].to_numpy(zero_copy_only=False)
    return pa.table({
        "recording_id": rec[starts].tolist(), "turn_index": turn_index.astype(np.int32),
        "speaker": spk[starts].tolist(), "start_s": np.minimum.reduceat(t0, starts),
        "end_s": np.maximum.reduceat(t1, starts), "text": [join(words[a:b]) for a, b in zip(starts, ends)],
        "overlap": pa.nulls(len(starts), pa.float64()),
    }, schema=TURNS)


def turn_overlap(turns: pa.Table, overlap: pa.Table, sample_rate: int) -> pa.Array:
    """Seconds of each turn (recording_id, start_s, end_s) inside its recording's overlap regions.

    Args:
        turns: turns table rows.
        overlap: (recording_id, start_sample, end_sample) regions of overlapped speech, not
            overlapping one another within a recording; a recording with rows (even only an empty
            one) was looked at, one without was not.
        sample_rate: the rate of the regions' sample offsets.

    Returns:
        float64 seconds per turn; null for a turn of a recording without overlap rows.
    """
    rids = np.array(turns["recording_id"].to_pylist(), dtype=object)
    t0 = np.round(turns["start_s"].to_numpy(zero_copy_only=False) * sample_rate).astype(np.int64)
    t1 = np.round(turns["end_s"].to_numpy(zero_copy_only=False) * sample_rate).astype(np.int64)
    regions: dict[str, list[tuple[int, int]]] = {}
    for rid, s, e in zip(*(overlap[c].to_pylist() for c in ("recording_id", "start_sample", "end_sample"))):
        regions.setdefault(rid, []).append((s, e))
    out = np.full(len(rids), None, dtype=object)
    order = np.argsort(rids, kind="stable")  # each recording's turns found by binary search, not a scan
    ordered = rids[order]
    for rid, pairs in regions.items():
        mine = order[np.searchsorted(ordered, rid, side="left"):np.searchsorted(ordered, rid, side="right")]
        covered = _covered_before(np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2))
        out[mine] = ((covered(t1[mine]) - covered(t0[mine])) / sample_rate).tolist()
    return pa.array(out.tolist(), pa.float64())


def _covered_before(pairs: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """For sorted, disjoint [start, end) regions: t -> samples of the regions before t."""
    starts, ends = pairs[:, 0], pairs[:, 1]
    before = np.concatenate([[0], np.cumsum(ends - starts)])

    def covered(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(starts, t, side="right")  # regions starting at or before t
        last = np.maximum(i - 1, 0)
        partial = np.where(i > 0, np.clip(t - starts[last], 0, ends[last] - starts[last]), 0)
        return before[last] + partial

    return covered


def segment_turns(segments: pa.Table) -> pa.Table:
    """Turns without speakers: one per segment (recording_id, segment order, start_s, end_s, text)."""
    segs = segments.sort_by([("recording_id", "ascending"), ("start_s", "ascending")])
    rec = np.array(segs["recording_id"].to_pylist(), dtype=object)
    n = len(rec)
    new_rec = np.ones(n, dtype=bool)
    new_rec[1:] = rec[1:] != rec[:-1]
    turn_index = np.arange(n) - np.maximum.accumulate(np.where(new_rec, np.arange(n), 0)) if n else np.zeros(0)
    return pa.table({
        "recording_id": rec.tolist(), "turn_index": turn_index.astype(np.int32),
        "speaker": pa.nulls(n, pa.string()), "start_s": segs["start_s"], "end_s": segs["end_s"],
        "text": segs["text"], "overlap": pa.nulls(n, pa.float64()),
    }, schema=TURNS)


def speakers_table(spans: pa.Table, turns: pa.Table, sample_rate: int) -> pa.Table:
    """One row per (recording, speaker): talk time, turns and first time heard, by recording then first_s."""
    if spans.num_rows == 0:
        return SPEAKERS.empty_table()
    grouped = spans.append_column("n_samples", pc.subtract(spans["end_sample"], spans["start_sample"])).group_by(
        ["recording_id", "speaker"]).aggregate([("n_samples", "sum"), ("start_sample", "min")])
    named = turns.filter(pc.is_valid(turns["speaker"]))
    n_turns = {(r, s): c for r, s, c in zip(*(
        named.group_by(["recording_id", "speaker"]).aggregate([("turn_index", "count")])[c].to_pylist()
        for c in ("recording_id", "speaker", "turn_index_count")))}
    rows = sorted(zip(grouped["recording_id"].to_pylist(), grouped["speaker"].to_pylist(),
                      grouped["n_samples_sum"].to_pylist(), grouped["start_sample_min"].to_pylist()),
                  key=lambda row: (row[0], row[3], row[1]))
    return pa.table({
        "recording_id": [r[0] for r in rows], "speaker": [r[1] for r in rows],
        "talk_s": [r[2] / sample_rate for r in rows],
        "n_turns": [n_turns.get((r[0], r[1]), 0) for r in rows], "first_s": [r[3] / sample_rate for r in rows],
    }, schema=SPEAKERS)


@dataclass(frozen=True)
class SpeakerLabels:
    """The speakers stage's rows for the recordings being stitched, split into spans and failures.

    Attributes:
        spans: the ``ok`` rows (recording_id, start_sample, end_sample, speaker), sorted by recording
            and start.
        failed: the ``failed`` rows: a window (its samples) or a whole recording (null samples).
        ids: ``spans.recording_id`` as an array, for finding a chunk's slice by binary search.
        overlap: the ``overlap`` rows (recording_id, start_sample, end_sample): overlapped speech
            of the recordings the segmentation model ran on, sorted like ``spans``.
        overlap_ids: ``overlap.recording_id`` as an array, likewise.
    """

    spans: pa.Table
    failed: pa.Table
    ids: np.ndarray
    overlap: pa.Table
    overlap_ids: np.ndarray

    @classmethod
    def from_rows(cls, rows: pa.Table) -> SpeakerLabels:
        """Split ``core.tables.SPEAKER_LABELS`` rows; spans are sorted, so a chunk is one slice."""
        ok = pc.equal(rows["status"], "ok")
        overlapped = pc.equal(rows["status"], "overlap")
        spans = rows.filter(ok).select(["recording_id", "start_sample", "end_sample", "speaker"])
        spans = spans.sort_by([("recording_id", "ascending"), ("start_sample", "ascending")])
        failed = rows.filter(pc.invert(pc.or_(ok, overlapped)))
        overlap = rows.filter(overlapped).select(["recording_id", "start_sample", "end_sample"])
        overlap = overlap.sort_by([("recording_id", "ascending"), ("start_sample", "ascending")])
        return cls(spans, failed, spans["recording_id"].to_numpy(zero_copy_only=False), overlap,
                   overlap["recording_id"].to_numpy(zero_copy_only=False))

    def chunk(self, first_id: str, last_id: str) -> pa.Table:
        """The spans of the recordings whose ids lie in [first_id, last_id] (in sorted order)."""
        return _id_range(self.spans, self.ids, first_id, last_id)

    def overlap_chunk(self, first_id: str, last_id: str) -> pa.Table:
        """The overlap rows of the recordings whose ids lie in [first_id, last_id]."""
        return _id_range(self.overlap, self.overlap_ids, first_id, last_id)

    def n_speakers(self, recording_ids: Sequence[str]) -> list[int | None]:
        """Distinct speakers per recording: 0 without speech, None where the stage failed on it."""
        unlabelled = set(self.failed.filter(pc.is_null(self.failed["start_sample"]))["recording_id"].to_pylist())
        counts = document_speaker_counts(recording_ids, self.spans).tolist()
        return [None if rid in unlabelled else n for rid, n in zip(recording_ids, counts)]


def document_speaker_counts(recording_ids: Sequence[str], spans: pa.Table) -> np.ndarray:
    """The number of distinct speakers of each recording (0 for one without spans), as int32."""
    pairs = set(zip(spans["recording_id"].to_pylist(), spans["speaker"].to_pylist()))
    counts: dict[str, int] = {}
    for rid, _ in pairs:
        counts[rid] = counts.get(rid, 0) + 1
    return np.array([counts.get(r, 0) for r in recording_ids], dtype=np.int32)


def _id_range(table: pa.Table, ids: np.ndarray, first_id: str, last_id: str) -> pa.Table:
    """The slice of ``table`` (sorted by recording_id, whose ids are ``ids``) with ids in [first_id, last_id]."""
    lo = int(np.searchsorted(ids, first_id, side="left"))
    hi = int(np.searchsorted(ids, last_id, side="right"))
    return table.slice(lo, hi - lo)
