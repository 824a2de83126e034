"""Disk housekeeping: what the work_dir holds, ``vadpack prune``, and ``vad.keep_pcm: false``.

The PCM cache (about 115 MB per audio hour) and the stores grow with every recording ever seen.
``prune`` removes what no recording of the archive, as it stands now, uses: the cache and results of
deleted or modified files, the results of other models and settings, and exports of recordings that
are gone. ``vad.keep_pcm: false`` drops each recording's PCM once all its segments are transcribed;
``auto`` (the default) does so once the cache passes ``vad.pcm_limit_gb``.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.cache import pcm_path
from vadpack.core.partstore import PartStore
from vadpack.core.tables import RECORDINGS, VAD_SEGMENTS, read_table
from vadpack.pipeline.config import Config
from vadpack.pipeline.speaker_store import segments_digests, speakers_store, todo_segments
from vadpack.pipeline.store import asr_store, spans_of, todo_spans
from vadpack.pipeline.workdir import WorkDir

log = logging.getLogger("vadpack")


@dataclass
class PruneReport:
    """What ``prune`` removed (or would remove, on a dry run), in files and bytes per kind."""

    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, path: Path) -> None:
        self.files[kind] = self.files.get(kind, 0) + 1
        self.bytes[kind] = self.bytes.get(kind, 0) + disk_bytes(path)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())


def disk_bytes(path: Path) -> int:
    """Bytes under ``path`` (a file, or everything in a folder)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def usage(cfg: Config) -> dict[str, tuple[int, int]]:
    """(files, bytes) of the PCM cache and of the stores, for ``vadpack status``."""
    work = WorkDir(cfg.work_path)
    out = {}
    for name, folder, pattern in (("pcm cache", work.pcm, "*.s16"), ("store", work.store, "*.parquet")):
        files = list(folder.rglob(pattern)) if folder.is_dir() else []
        out[name] = (len(files), disk_bytes(folder))
    return out


def prune(cfg: Config, dry_run: bool = False) -> PruneReport:
    """Remove cache files, store entries and exports that no recording of the archive uses.

    What the archive uses is what the last scan and vad found (run ``vadpack run`` first so they are
    current). Other models' and settings' stores go too: switching back means decoding again.
    """
    work = WorkDir(cfg.work_path)
    report = PruneReport()
    if not work.recordings.exists() or not work.segments.exists():
        return report
    recordings = read_table(work.recordings, RECORDINGS)
    live = set(pc.drop_null(recordings["content_id"]).to_pylist())
    _prune_pcm(work, live, report, dry_run)
    _prune_stores(cfg, work, read_table(work.segments, VAD_SEGMENTS), report, dry_run)
    _prune_exports(cfg, report, dry_run)
    return report


def _prune_pcm(work: WorkDir, live: set[str], report: PruneReport, dry_run: bool) -> None:
    if not work.pcm.is_dir():
        return
    for path in sorted(work.pcm.iterdir()):
        content_id = path.name.split(".", 1)[0]
        if path.is_file() and content_id not in live:
            report.add("pcm cache", path)
            if not dry_run:
                path.unlink()


def _prune_stores(cfg: Config, work: WorkDir, segments: pa.Table, report: PruneReport, dry_run: bool) -> None:
    if not work.store.is_dir():
        return
    transcripts = asr_store(cfg.asr, work)
    labels = speakers_store(cfg.speakers, work) if cfg.speakers.enabled else None
    # A forced rerun's unfinished folder (PartStore.forced) is the current store's future: kept.
    keep = {s.folder for store in (transcripts, labels) if store is not None for s in (store, store.forced)}
    for folder in sorted(p for p in work.store.iterdir() if p.is_dir() and p not in keep):
        report.add("other models' results", folder)
        if not dry_run:
            shutil.rmtree(folder)
    if labels is not None:
        _compact(labels, segments_digests(segments), "unused speaker labels (rows)", report, dry_run)
    _compact(transcripts, spans_of(segments), "unused results (rows)", report, dry_run)


def _compact(store: PartStore, live: pa.Table, kind: str, report: PruneReport, dry_run: bool) -> None:
    """Keep only the current rows of the keys (spans, recordings) of the archive now, in one part."""
    removed = store.compact(live, dry_run)
    if removed:
        report.files[kind] = removed
        report.bytes[kind] = 0


def _prune_exports(cfg: Config, report: PruneReport, dry_run: bool) -> None:
    from vadpack.stitcher.stage import stale_export_files

    for path in stale_export_files(cfg.output_path):
        report.add("exports", path)
        if not dry_run:
            path.unlink()


def pcm_cache_bytes(cfg: Config) -> int:
    """Bytes of the decoded-audio cache files (``work_dir/pcm/*.s16``)."""
    pcm = WorkDir(cfg.work_path).pcm
    if not pcm.is_dir():
        return 0
    with os.scandir(pcm) as entries:  # one stat per file, no Path per file (a file per recording)
        return sum(e.stat().st_size for e in entries if e.name.endswith(".s16") and e.is_file())


def pcm_over_limit(cfg: Config) -> int | None:
    """The cache's bytes when they pass ``vad.pcm_limit_gb``; None while they do not."""
    n = pcm_cache_bytes(cfg)
    return n if n > cfg.vad.pcm_limit_gb * 1e9 else None


def drops_pcm(cfg: Config) -> bool:
    """Whether this run drops finished recordings' PCM: always with ``vad.keep_pcm: false``, never with
    ``true``, and with ``auto`` once the cache has grown past ``vad.pcm_limit_gb``."""
    if cfg.vad.keep_pcm == "auto":
        return pcm_over_limit(cfg) is not None
    return cfg.vad.keep_pcm is False


def drop_transcribed_pcm(cfg: Config) -> int:
    """``vad.keep_pcm: false`` (or ``auto`` past ``vad.pcm_limit_gb``): delete the PCM of every
    recording whose segments all have results (and, with speakers on, that has its speaker labels).

    The vad sidecar stays, so its segments stand; asr or speakers decode the file again only if they
    ever need the audio (another model, a failed segment retried).
    """
    work = WorkDir(cfg.work_path)
    if not work.segments.exists() or not work.recordings.exists():
        return 0
    segments = read_table(work.segments, VAD_SEGMENTS)
    pending = set(todo_spans(segments, asr_store(cfg.asr, work).working())["content_id"].to_pylist())
    if cfg.speakers.enabled:
        labels = speakers_store(cfg.speakers, work).working()
        pending |= set(todo_segments(segments, labels)["content_id"].to_pylist())
    live = set(pc.drop_null(read_table(work.recordings, RECORDINGS)["content_id"]).to_pylist())
    n = 0
    for content_id in sorted(live - pending):
        path = pcm_path(work.pcm, content_id)
        if path.exists():
            path.unlink()
            n += 1
    if n:
        log.info("vad.keep_pcm = %s: removed the PCM of %d fully transcribed recordings",
                 str(cfg.vad.keep_pcm).lower(), n)
    return n
