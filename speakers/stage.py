"""The speakers stage: vad segments + PCM cache -> speaker spans per recording.

Recordings are taken in groups of about ``group_windows`` windows (never splitting a recording), so
memory does not grow with the archive. Within a group, windows of all its recordings are embedded in
large batches, longest first, with features prepared ahead of the model; each recording is then
clustered on its own (never across recordings), its labels smoothed, and its segments cut into
spans. Every window that got no embedding is in the failures table with the reason, and a recording
left with no embedded window gets a row of its own there.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.cache import SAMPLE_RATE, open_pcm, pcm_path
from speakers.cluster import ClusterParams, cluster_windows, first_appearance_order
from speakers.config import SpeakersConfig
from speakers.embed import Embedder, Prefetcher, embed_batch, featurize, load_embedder
from speakers.smooth import majority_filter, midpoint, quietest_sample, segment_spans
from speakers.tables import SPEAKER_FAILURES, SPEAKER_SPANS
from speakers.types import RecordingSpeakers, Segment, SpeakerSpan, SpeakersSummary, Window, WindowFailure
from speakers.windows import make_windows, plan_batches, recording_groups, segments_from_table, window_bounds

_log = logging.getLogger("vadpack.speakers")
NO_WINDOWS = "no window of this recording could be embedded (see its window failures); it has no speakers"


@dataclass(frozen=True, slots=True)
class SpeakersResult:
    """What :func:`run_speakers` returns.

    Attributes:
        spans: ``SPEAKER_SPANS`` rows, sorted by recording and start.
        failures: ``SPEAKER_FAILURES`` rows.
        summary: ``SpeakersSummary.as_dict()``.
    """

    spans: pa.Table
    failures: pa.Table
    summary: dict


def run_speakers(segments: pa.Table, cache_dir: Path, cfg: SpeakersConfig, progress: bool = True,
                 embedder: Embedder | None = None) -> SpeakersResult:
    """Label who speaks when in every recording of ``segments``.

    Args:
        segments: the vad stage's table (recording_id, segment_index, start_sample, end_sample).
        cache_dir: the PCM cache folder.
        cfg: the speakers config.
        progress: show a progress bar (only on a terminal).
        embedder: an already loaded backend (for tools that run the stage many times); None loads
            the one ``cfg`` names.

    Raises:
        ValueError: the segments table lacks a column or holds a negative segment.
        ImportError: the backend's extra is not installed.
    """
    segs = segments_from_table(segments)
    counts = [len(window_bounds(s.start_sample, s.end_sample, cfg.window_samples, cfg.hop_samples)) for s in segs]
    embedder = embedder or load_embedder(cfg)
    t0 = time.perf_counter()  # model loading is not part of the stage's speed
    run = _Run(embedder, cfg, Path(cache_dir))
    results: list[RecordingSpeakers] = []
    with _progress_bar(sum(counts), progress) as bar:
        for group in recording_groups(segs, counts, cfg.group_windows):
            results += run.group(group, bar.update)
    summary = run.summary(results, segs, time.perf_counter() - t0)
    _log.info("speakers: %d recordings, %d windows in %.1f s (%.0fx real time), %d failed windows",
              summary.recordings, summary.windows, summary.wall_s, summary.as_dict()["embed_xrt"],
              summary.failed_windows)
    return SpeakersResult(spans_table(results), failures_table(results), summary.as_dict())


class _Run:
    """One pass over the groups of recordings, with its running figures."""

    def __init__(self, embedder: Embedder, cfg: SpeakersConfig, cache_dir: Path) -> None:
        self.embedder, self.cfg, self.cache_dir = embedder, cfg, cache_dir
        self.embed_s = 0.0
        self.batches = 0
        self.splits = 0

    def group(self, segs: list[Segment], advance: Callable[[int], object]) -> list[RecordingSpeakers]:
        """Embed every window of a group of recordings, then label each recording."""
        t0 = time.perf_counter()
        windows = make_windows(segs, self.cfg.window_samples, self.cfg.hop_samples)
        embedded: dict[Window, np.ndarray] = {}
        failed: list[WindowFailure] = []
        feeder = Prefetcher(lambda b: featurize(self.embedder, self.cache_dir, b), self.cfg.prefetch)
        for fb in feeder.run(plan_batches(windows, self.cfg.batch_windows)):
            outcome = embed_batch(self.embedder, fb)
            embedded.update(zip(outcome.ok, outcome.embeddings))
            failed += outcome.failed
            self.batches += 1
            self.splits += outcome.splits
            advance(len(fb.windows) + len(fb.failed))
        self.embed_s += time.perf_counter() - t0
        failed_by_rec = defaultdict(list)
        for f in failed:
            failed_by_rec[f.window.recording_id].append(f)
        return [self.label_recording(rid, list(rec_segs), embedded, failed_by_rec[rid])
                for rid, rec_segs in groupby(segs, key=lambda s: s.recording_id)]

    def label_recording(self, recording_id: str, segs: list[Segment], embedded: dict[Window, np.ndarray],
                        failed: list[WindowFailure]) -> RecordingSpeakers:
        """Cluster one recording's windows and cut its segments into speaker spans."""
        windows = [w for w in make_windows(segs, self.cfg.window_samples, self.cfg.hop_samples) if w in embedded]
        if not windows:
            return RecordingSpeakers(recording_id, (), 0, tuple(failed))
        labels = cluster_windows(np.stack([embedded[w] for w in windows]), cluster_params(self.cfg))
        boundary = self._boundary(recording_id)
        by_segment: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(windows):
            by_segment[w.segment_index].append(i)
        spans = []
        for seg in segs:
            idx = by_segment.get(seg.segment_index, [])
            seg_labels = majority_filter([int(labels[i]) for i in idx], self.cfg.smoothing)
            spans += segment_spans(seg.start_sample, seg.end_sample, [windows[i].center_sample for i in idx],
                                   seg_labels, boundary)
        names = first_appearance_order(np.array([label for _, _, label in spans]))
        return RecordingSpeakers(recording_id, tuple(SpeakerSpan(recording_id, s, e, f"S{n + 1}")
                                                     for (s, e, _), n in zip(spans, names.tolist())),
                                 int(names.max()) + 1, tuple(failed))

    def _boundary(self, recording_id: str) -> Callable[[int, int], int]:
        """Changes go to the quietest point between two window centres; the midpoint if the audio is gone."""
        try:
            pcm = open_pcm(pcm_path(self.cache_dir, recording_id))
        except OSError:
            return midpoint
        return lambda lo, hi: quietest_sample(pcm, lo, min(hi, len(pcm)))

    def summary(self, results: list[RecordingSpeakers], segs: Sequence[Segment], wall_s: float) -> SpeakersSummary:
        n_windows = sum(len(window_bounds(s.start_sample, s.end_sample, self.cfg.window_samples,
                                          self.cfg.hop_samples)) for s in segs)
        return SpeakersSummary(
            recordings=len(results), windows=n_windows,
            failed_windows=sum(len(r.failures) for r in results),
            failed_recordings=sum(not r.spans for r in results),
            audio_s=sum(s.end_sample - s.start_sample for s in segs) / SAMPLE_RATE,
            embed_s=self.embed_s, wall_s=wall_s, batches=self.batches, oom_splits=self.splits,
            device=str(self.embedder.device), backend=self.embedder.name,
            speakers_per_recording={r.recording_id: r.n_speakers for r in results},
        )


def cluster_params(cfg: SpeakersConfig) -> ClusterParams:
    """The clustering options of a speakers config."""
    return ClusterParams(threshold=cfg.threshold, merge_similarity=cfg.merge_similarity,
                         num_speakers=cfg.num_speakers, min_speakers=cfg.min_speakers,
                         max_speakers=cfg.max_speakers, max_cluster_windows=cfg.max_cluster_windows,
                         min_cluster_windows=cfg.min_cluster_windows)


def spans_table(results: Sequence[RecordingSpeakers]) -> pa.Table:
    """The ``SPEAKER_SPANS`` table of all recordings, sorted by recording and start."""
    spans = sorted((s for r in results for s in r.spans), key=lambda s: (s.recording_id, s.start_sample))
    return pa.table({
        "recording_id": [s.recording_id for s in spans], "start_sample": [s.start_sample for s in spans],
        "end_sample": [s.end_sample for s in spans], "speaker": [s.speaker for s in spans],
    }, schema=SPEAKER_SPANS)


def failures_table(results: Sequence[RecordingSpeakers]) -> pa.Table:
    """The ``SPEAKER_FAILURES`` table: every failed window, and each recording left without speakers."""
    rows = [(f.window.recording_id, f.window.start_sample, f.window.end_sample, f.error)
            for r in results for f in r.failures]
    rows += [(r.recording_id, None, None, NO_WINDOWS) for r in results if not r.spans]
    rows.sort(key=lambda row: (row[0], row[1] is not None, row[1] or 0))
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(SPEAKER_FAILURES.names)},
                    schema=SPEAKER_FAILURES)


def _progress_bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="window", desc="speakers", disable=not progress or not sys.stderr.isatty())
