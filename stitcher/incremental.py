"""Stitch what changed: per-recording input digests, the buckets they touch, and the rewrite of those.

A recording's rows in every public table (and its export files) are a function of its own inputs:
its scan row, its vad row, its segments, the stored results of its content, its export name. Stitch
records a digest of those per recording (``_vadpack/recordings-g*.parquet``); a run rebuilds the
recordings whose digest is new or different, removes those that are gone, and rewrites the part
files of the buckets that hold any of them (``core.dataset``). The rest of the archive is not read.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core import __version__
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.configtools import stable_hash
from vadpack.core.dataset import Commit, Manifest, bucket_of, read_state
from vadpack.core.faults import fault_point
from vadpack.core.tables import OUTPUT_SCHEMAS, SCHEMA_VERSION
from vadpack.stitcher.config import StitchConfig
from vadpack.stitcher.types import StitchInputs

log = logging.getLogger("vadpack")

STATE = pa.schema([
    ("recording_id", pa.string()),
    ("bucket", pa.int32()),
    ("digest", pa.string()),
    ("exports", pa.list_(pa.string())),  # export files, relative to the output folder
])

TOKENS_PER_SPEECH_S = 4.0  # Paraformer writes about 3-4 tokens per second of Mandarin speech
GROUP_TOKENS = 2_000_000  # tokens built in memory at once (about 0.5 GB at the peak)
MAX_BUCKETS = 4096


@dataclass(frozen=True, slots=True)
class Plan:
    """What one stitch run rewrites.

    Attributes:
        n_buckets: the bucket count of the new generation.
        layout: the layout digest (``Manifest.layout``).
        full: every table is rewritten from nothing (first run, another layout or bucket count).
        digests: each live recording's input digest.
        buckets: each live recording's bucket.
        exports: each live recording's export files (empty for one without a document).
        dirty: live recordings to rebuild (sorted).
        gone: recordings in the tables that are no longer in the archive (sorted).
        groups: the buckets to rewrite, in groups built together.
        old_state: the previous run's per-recording state.
    """

    n_buckets: int
    layout: str
    full: bool
    digests: dict[str, str]
    buckets: dict[str, int]
    exports: dict[str, list[str]]
    dirty: list[str]
    gone: list[str]
    groups: list[list[int]]
    old_state: pa.Table

    @property
    def nothing_to_do(self) -> bool:
        return not (self.full or self.dirty or self.gone)


def layout_digest(cfg: StitchConfig, model: str, with_speakers: bool) -> str:
    """What every row depends on beyond its own recording: a change rewrites everything."""
    return stable_hash({"schema": SCHEMA_VERSION, "vadpack": __version__, "model": model, "formats": cfg.formats,
                        "sentence_gap_s": cfg.sentence_gap_s, "punc_model": cfg.punc_model,
                        "speakers": with_speakers, "part_tokens": cfg.part_tokens})


def plan_stitch(inputs: StitchInputs, cfg: StitchConfig, output_dir: Path, previous: Manifest | None,
                model: str) -> Plan:
    """Compare each recording's input digest with the last run's; decide the buckets to rewrite."""
    with_speakers = inputs.source.with_speakers if inputs.source else inputs.speakers is not None
    layout = layout_digest(cfg, model, with_speakers)
    est = estimated_tokens(inputs.recordings, inputs.vad_recordings)
    n_buckets = bucket_count(sum(est.values()), cfg.part_tokens, previous, layout)
    full = previous is None or previous.layout != layout or previous.n_buckets != n_buckets
    old_state = read_state(output_dir, previous, STATE)
    rids = inputs.recordings["recording_id"].to_pylist()
    exports = export_files(inputs, cfg.formats)
    digests = recording_digests(inputs, exports)
    buckets = dict(zip(rids, bucket_of(rids, n_buckets).tolist()))
    old = dict(zip(old_state["recording_id"].to_pylist(), old_state["digest"].to_pylist()))
    old_buckets = dict(zip(old_state["recording_id"].to_pylist(), old_state["bucket"].to_pylist()))
    dirty = sorted(r for r in rids if full or inputs.source is None or old.get(r) != digests[r])
    gone = sorted(set(old) - set(digests))
    touched = {buckets[r] for r in dirty} | {old_buckets[r] for r in gone}
    if full:
        touched.add(0)  # bucket 0 holds the tables' schema even when the archive is empty
    groups = bucket_groups(sorted(b for b in touched if b < n_buckets), buckets, dirty, est)
    return Plan(n_buckets, layout, full, digests, buckets, exports, dirty, gone, groups, old_state)


def estimated_tokens(recordings: pa.Table, vad_recordings: pa.Table) -> dict[str, float]:
    """Each recording's tokens, guessed from its speech time (before any result is read)."""
    speech = dict(zip(vad_recordings["recording_id"].to_pylist(),
                      (vad_recordings["speech_samples"].to_numpy(zero_copy_only=False) / SAMPLE_RATE).tolist()))
    return {r: 1.0 + TOKENS_PER_SPEECH_S * (speech.get(r) or 0.0) for r in recordings["recording_id"].to_pylist()}


def bucket_count(tokens: float, part_tokens: int, previous: Manifest | None, layout: str) -> int:
    """Buckets of about ``part_tokens`` tokens; the previous count is kept until the archive has
    grown fourfold past it (then everything is rewritten once), so buckets stay put as it grows."""
    ideal = 1 << max(0, int(np.ceil(np.log2(max(tokens / part_tokens, 1.0)))))
    ideal = min(ideal, MAX_BUCKETS)
    if previous is not None and previous.layout == layout and ideal < 4 * previous.n_buckets:
        return previous.n_buckets
    return ideal


def bucket_groups(touched: list[int], buckets: dict[str, int], dirty: list[str],
                  est: dict[str, float]) -> list[list[int]]:
    """Consecutive touched buckets in groups of about ``GROUP_TOKENS`` tokens to rebuild."""
    load: dict[int, float] = {}
    for r in dirty:
        load[buckets[r]] = load.get(buckets[r], 0.0) + est[r]
    groups: list[list[int]] = []
    size = 0.0
    for b in touched:
        if groups and size + load.get(b, 0.0) <= GROUP_TOKENS:
            groups[-1].append(b)
            size += load.get(b, 0.0)
        else:
            groups.append([b])
            size = load.get(b, 0.0)
    return groups


# ---- digests ----------------------------------------------------------------------------------

def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each integer (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def segment_hashes(segments: pa.Table) -> dict[str, int]:
    """Per recording, a 64-bit hash of its segments (index, start and end sample), computed column-wise."""
    if segments.num_rows == 0:
        return {}
    encoded = pc.dictionary_encode(segments["recording_id"]).combine_chunks()
    idx = segments["segment_index"].to_numpy().astype(np.uint64)
    h = _mix(_mix(_mix(idx) ^ segments["start_sample"].to_numpy().astype(np.uint64))
             ^ segments["end_sample"].to_numpy().astype(np.uint64))
    acc = np.zeros(len(encoded.dictionary), dtype=np.uint64)
    np.add.at(acc, encoded.indices.to_numpy(zero_copy_only=False), h)  # wraps modulo 2**64
    return dict(zip(encoded.dictionary.to_pylist(), acc.tolist()))


def recording_digests(inputs: StitchInputs, exports: dict[str, list[str]]) -> dict[str, str]:
    """Each recording's input digest: what its rows and exports are made of."""
    versions: dict[str, str] = {}
    if inputs.source is not None:
        v = inputs.source.versions()
        versions = dict(zip(v["content_id"].to_pylist(), v["version"].to_pylist()))
    vad = {r["recording_id"]: r for r in inputs.vad_recordings.to_pylist()}
    segs = segment_hashes(inputs.segments)
    out = {}
    for rec in inputs.recordings.select(["recording_id", "path", "content_id", "status", "error"]).to_pylist():
        rid = rec["recording_id"]
        key = [rec, vad.get(rid), segs.get(rid, 0), versions.get(rec["content_id"] or "", ""), exports.get(rid, [])]
        out[rid] = hashlib.sha256(repr(key).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return out


# ---- export names -----------------------------------------------------------------------------

def export_files(inputs: StitchInputs, formats: tuple[str, ...]) -> dict[str, list[str]]:
    """Each recording's export files (``<format>/<relative path>.<format>``), empty for one without
    a document (a failed input)."""
    from vadpack.stitcher.export import export_stems

    ok_vad = set(inputs.vad_recordings.filter(pc.equal(inputs.vad_recordings["status"], "ok"))
                 ["recording_id"].to_pylist())
    recs = inputs.recordings.filter(pc.equal(inputs.recordings["status"], "ok"))
    paths = {r: p for r, p in zip(recs["recording_id"].to_pylist(), recs["path"].to_pylist()) if r in ok_vad}
    stems = export_stems(paths, inputs.export_roots)
    return {rid: [f"{fmt}/{stem}.{fmt}" for fmt in formats] for rid, stem in stems.items()}


# ---- the rewrite ------------------------------------------------------------------------------

def run_plan(plan: Plan, inputs: StitchInputs, output_dir: Path, previous: Manifest | None,
             meta: dict[str, str], build: Callable[[StitchInputs], dict[str, pa.Table]],
             export: Callable[[dict[str, pa.Table], dict[str, list[str]]], int],
             ) -> tuple[Manifest, tuple[int, int, int]]:
    """Rebuild the plan's recordings a group of buckets at a time, stage the touched buckets' parts,
    commit, then remove the exports that are no longer anyone's.

    Args:
        build: every public table of some recordings (their inputs, results loaded).
        export: writes the export files of built tables (given each recording's files); how many.

    Returns:
        The new manifest, and (exports written, exports removed, parts written).
    """
    commit = Commit(output_dir, previous, plan.n_buckets, plan.layout)
    dirty = set(plan.dirty)
    replaced = dirty | set(plan.gone)
    group_of_bucket = {b: g for g, group in enumerate(plan.groups) for b in group}
    segments = _only(inputs.segments, dirty)
    seg_buckets = np.array([plan.buckets[r] for r in segments["recording_id"].to_pylist()], dtype=np.int64)
    group_of_row = np.array([group_of_bucket[b] for b in seg_buckets.tolist()], dtype=np.int64)
    exports_written, parts = 0, 0
    live = set(plan.buckets.values())
    for g, results, speakers in _load_groups(inputs, segments, group_of_row, len(plan.groups)):
        rids = {r for r in dirty if group_of_bucket.get(plan.buckets[r]) == g}
        sub = StitchInputs(_only(inputs.recordings, rids), _only(inputs.vad_recordings, rids),
                           _only(segments, rids), results, speakers)
        tables = build(sub)
        exports_written += export(tables, plan.exports)
        rows = {name: (table, row_buckets(table, plan.buckets)) for name, table in tables.items()}
        # Buckets are staged two at a time: reading, sorting and writing Parquet release the GIL.
        with ThreadPoolExecutor(max_workers=STAGE_THREADS) as pool:
            for n in pool.map(partial(stage_bucket, commit, rows=rows, replaced=replaced, live=live, meta=meta),
                              plan.groups[g]):
                parts += n
                for _ in range(n):  # here, in the main thread, where a fault's signal acts
                    fault_point("stitch.table_written")
    state = new_state(plan, replaced)
    manifest = commit.finish(state)
    removed = remove_exports(output_dir, plan, replaced)
    log.info("stitch: %d recordings rebuilt, %d removed, %d part files written", len(plan.dirty), len(plan.gone),
             parts)
    return manifest, (exports_written, removed, parts)


def _only(table: pa.Table, rids: set[str]) -> pa.Table:
    return table.filter(pc.is_in(table["recording_id"], pa.array(sorted(rids), pa.string())))


def _load_groups(inputs: StitchInputs, segments: pa.Table, group_of_row: np.ndarray,
                 n_groups: int) -> Iterator[tuple[int, pa.Table, pa.Table | None]]:
    if inputs.source is not None:
        yield from inputs.source.load_groups(segments, group_of_row, n_groups)
        return
    assert inputs.results is not None
    for g in range(n_groups):
        rids = set(segments.filter(pa.array(group_of_row == g))["recording_id"].to_pylist())
        speakers = _only(inputs.speakers, rids) if inputs.speakers is not None else None
        yield g, _only(inputs.results, rids), speakers


STAGE_THREADS = 2


def row_buckets(table: pa.Table, buckets: dict[str, int]) -> np.ndarray:
    """Each row's bucket (by its recording), computed per distinct recording, not per row."""
    if table.num_rows == 0:
        return np.zeros(0, np.int64)
    encoded = pc.dictionary_encode(table["recording_id"]).combine_chunks()
    per_id = np.array([buckets[r] for r in encoded.dictionary.to_pylist()], dtype=np.int64)
    return per_id[encoded.indices.to_numpy(zero_copy_only=False)]


def stage_bucket(commit: Commit, bucket: int, rows: dict[str, tuple[pa.Table, np.ndarray]], replaced: set[str],
                 live: set[int], meta: dict[str, str]) -> int:
    """Stage bucket ``bucket`` of every table: its kept rows and its rebuilt ones (``rows``: per table, the
    rebuilt rows and each one's bucket). Returns parts staged."""
    from vadpack.core.dataset import read_parts

    if bucket not in live and bucket != 0:  # no recording left in it (bucket 0 keeps even empty tables)
        for name in OUTPUT_SCHEMAS:
            commit.drop(name, bucket)
        return 0
    for name, schema in OUTPUT_SCHEMAS.items():
        new, where = rows[name]
        new = new.filter(pa.array(where == bucket, pa.bool_())) if new.num_rows else new
        old_path = commit.live_part(name, bucket)
        kept = schema.empty_table()
        if old_path is not None:
            kept = read_parts([old_path], schema)
            kept = kept.filter(pc.invert(pc.is_in(kept["recording_id"], pa.array(sorted(replaced), pa.string()))))
        merged = pa.concat_tables([kept, new.cast(schema)])
        commit.stage(name, bucket, merged.sort_by("recording_id"), meta)  # stable: each recording keeps its order
    return len(OUTPUT_SCHEMAS)


def new_state(plan: Plan, replaced: set[str]) -> pa.Table:
    """The per-recording state after this run: the old rows of untouched recordings, new rows for the rebuilt."""
    kept = plan.old_state.filter(pc.invert(pc.is_in(plan.old_state["recording_id"],
                                                    pa.array(sorted(replaced), pa.string()))))
    rebuilt = pa.table({"recording_id": plan.dirty, "bucket": [plan.buckets[r] for r in plan.dirty],
                        "digest": [plan.digests[r] for r in plan.dirty],
                        "exports": [plan.exports.get(r, []) for r in plan.dirty]}, schema=STATE)
    return pa.concat_tables([kept, rebuilt]).sort_by("recording_id")


def remove_exports(output_dir: Path, plan: Plan, replaced: set[str]) -> int:
    """Delete the export files of removed recordings and the old files of rebuilt ones that moved
    (and the folders that leaves empty). Files nobody's state names are never touched."""
    rows = plan.old_state.filter(pc.is_in(plan.old_state["recording_id"], pa.array(sorted(replaced), pa.string())))
    now = {f for files in plan.exports.values() for f in files}
    n = 0
    for files in rows["exports"].to_pylist():
        for rel in files or ():
            if rel in now:
                continue
            path = Path(output_dir) / rel
            if path.is_file():
                path.unlink()
                n += 1
                _remove_empty_parents(path.parent, Path(output_dir))
    if n:
        log.info("stitch: removed %d exports of recordings no longer in the archive", n)
    return n


def _remove_empty_parents(folder: Path, top: Path) -> None:
    while folder != top and folder.parent != top:  # keep the format folder itself
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = folder.parent
