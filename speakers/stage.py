"""The speakers stage: speech segments + PCM cache -> speaker spans per recording's content.

Contents are taken in groups of about ``group_windows`` windows (never splitting a content), so
memory does not grow with the archive. Within a group, windows of all its contents are embedded in
large batches, longest first, with features prepared ahead of the model; each content is then
clustered on its own (never across recordings, so its labels do not depend on the rest of the
archive), its labels smoothed, and its segments cut into spans.

The result of a group is one ``core.tables.SPEAKER_RESULTS`` table: the spans (status ``ok``), a
row per window that got no embedding, and, for a content left with no embedded window at all, one
row with null samples that says why. The caller decides where the rows go (the pipeline's store).
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.cache import SAMPLE_RATE, open_pcm, pcm_path
from vadpack.core.progress import progress_bar
from vadpack.core.tables import SPEAKER_RESULTS, to_table
from vadpack.core.types import Span
from vadpack.speakers.cluster import ClusterParams, cluster_windows, first_appearance_order
from vadpack.speakers.config import SpeakersConfig
from vadpack.speakers.embed import (
    Embedder,
    Prefetcher,
    SegmentEmbedder,
    embed_batch,
    embed_segment,
    featurize,
    featurize_segment,
    load_embedder,
)
from vadpack.speakers.embed import weights_spec as weights_spec  # what keys the speaker store
from vadpack.speakers.segmentation import SegmentationNet, SegmentationRegions, load_segmentation, segment_speech
from vadpack.speakers.smooth import majority_filter, midpoint, quietest_sample, segment_spans, trim_spans
from vadpack.speakers.spectral import SpectralParams, spectral_windows
from vadpack.speakers.types import ContentSpeakers, EmbedOutcome, SpeakerSpan, SpeakersSummary, Window, WindowFailure
from vadpack.speakers.windows import content_groups, make_windows, plan_batches, spans_from_table, window_bounds

_log = logging.getLogger("vadpack.speakers")
NO_WINDOWS = "no window of this recording could be embedded, so it has no speakers"


@dataclass(frozen=True, slots=True)
class SpeakersResult:
    """What :func:`run_speakers` returns.

    Attributes:
        spans: the ``ok`` rows of ``SPEAKER_RESULTS``, sorted by content and start.
        failures: the ``failed`` rows (a window, or a whole content with null samples).
        summary: ``SpeakersSummary.as_dict()``.
        overlap: the ``overlap`` rows (overlapped speech of the contents the segmentation model ran on).
    """

    spans: pa.Table
    failures: pa.Table
    summary: dict
    overlap: pa.Table


def run_speakers(segments: pa.Table, cache_dir: Path, cfg: SpeakersConfig, progress: bool = True,
                 embedder: Embedder | None = None, segmenter: SegmentationNet | None = None) -> SpeakersResult:
    """Label who speaks when in every recording's content of ``segments``, all at once.

    Args:
        segments: the vad stage's table (content_id, start_sample, end_sample; other columns ignored).
        cache_dir: the PCM cache folder (``<content_id>.s16``).
        cfg: the speakers config.
        progress: show a progress bar (only on a terminal).
        embedder: an already loaded backend (for tools that run the stage many times); None loads
            the one ``cfg`` names.
        segmenter: an already loaded segmentation model, likewise (used only when ``cfg``'s regions
            need one).

    Raises:
        ValueError: the segments table lacks a column or holds a negative segment.
        ImportError: the backend's extra is not installed.
    """
    labeller = SpeakerLabeller(cfg, cache_dir, embedder, segmenter)
    parts = list(labeller.run(segments, progress))
    rows = pa.concat_tables(parts) if parts else SPEAKER_RESULTS.empty_table()
    status = rows["status"]
    return SpeakersResult(rows.filter(pc.equal(status, "ok")), rows.filter(pc.equal(status, "failed")),
                          labeller.summary(), rows.filter(pc.equal(status, "overlap")))


class SpeakerLabeller:
    """One loaded backend that labels contents group by group, with the running figures of its run.

    Args:
        cfg: the speakers config.
        cache_dir: the PCM cache folder.
        embedder: an already loaded backend; None loads the one ``cfg`` names (here, so that a
            caller with nothing to label never loads a model).
        segmenter: an already loaded segmentation model; None loads it when the regions need it.
    """

    def __init__(self, cfg: SpeakersConfig, cache_dir: Path, embedder: Embedder | None = None,
                 segmenter: SegmentationNet | None = None) -> None:
        self.cfg, self.cache_dir = cfg, Path(cache_dir)
        self.embedder = embedder or load_embedder(cfg)
        self.regions = cfg.resolved_regions
        self.segmenter: SegmentationNet | None = None
        if self.regions != "vad":
            self.segmenter = segmenter or load_segmentation()
        self._model_regions: dict[str, SegmentationRegions | None] = {}  # of the group being labelled
        self._speech: dict[str, list[tuple[int, int]]] = {}  # the group's vad segments, per content
        self.speakers_per_content: dict[str, int] = {}
        self.windows = self.failed_windows = 0
        self.audio_samples = 0
        self.embed_s = self.wall_s = 0.0
        self.batches = self.splits = 0

    def run(self, segments: pa.Table, progress: bool = True) -> Iterator[pa.Table]:
        """Yield one ``SPEAKER_RESULTS`` table per group of whole contents, in content order."""
        spans = spans_from_table(segments)
        counts = [len(window_bounds(s.start_sample, s.end_sample, self.cfg.window_samples, self.cfg.hop_samples))
                  for s in spans]
        self.windows += sum(counts)
        self.audio_samples += sum(s.n_samples for s in spans)
        with progress_bar(sum(counts), "window", "speakers", progress) as bar:
            for group in content_groups(spans, counts, self.cfg.group_windows):
                t0 = time.perf_counter()
                results = self._group(group, bar.update)
                self.wall_s += time.perf_counter() - t0
                self.speakers_per_content.update((r.content_id, r.n_speakers) for r in results)
                self.failed_windows += sum(len(r.failures) for r in results)
                yield results_table(results)

    def _group(self, spans: list[Span], advance: Callable[[int], object]) -> list[ContentSpeakers]:
        """Embed every window of a group of contents, then label each content."""
        t0 = time.perf_counter()
        windows = make_windows(spans, self.cfg.window_samples, self.cfg.hop_samples)
        self._model_regions.clear()
        self._speech = {cid: [(s.start_sample, s.end_sample) for s in segs]
                        for cid, segs in groupby(spans, key=lambda s: s.content_id)}
        if self.regions == "segmentation":
            kept = self._in_speech(windows)
            advance(len(windows) - len(kept))
            windows = kept
        embedded: dict[Window, np.ndarray] = {}
        failed: dict[str, list[WindowFailure]] = defaultdict(list)
        for outcome in self._embed(spans, windows):
            embedded.update(zip(outcome.ok, outcome.embeddings))
            for f in outcome.failed:
                failed[f.window.content_id].append(f)
            self.batches += 1
            self.splits += outcome.splits
            advance(len(outcome.ok) + len(outcome.failed))
        self.embed_s += time.perf_counter() - t0
        return [self.label_content(cid, list(segs), embedded, failed[cid])
                for cid, segs in groupby(spans, key=lambda s: s.content_id)]

    def _embed(self, spans: list[Span], windows: list[Window]) -> Iterator[EmbedOutcome]:
        """Embed ``windows`` (of the group's ``spans``) batch by batch, or segment by segment with
        ``speakers.embedding: segment``; features are prepared ahead of the model either way."""
        if self.cfg.resolved_embedding == "window":
            feeder = Prefetcher(lambda b: featurize(self.embedder, self.cache_dir, b), self.cfg.prefetch)
            for fb in feeder.run(plan_batches(windows, self.cfg.batch_windows)):
                yield embed_batch(self.embedder, fb)
            return
        if not hasattr(self.embedder, "embed_segment"):
            raise ValueError(f"speakers.embedding = segment needs the campp backend; {self.embedder.name} "
                             f"embeds windows only: set speakers.embedding: window")
        embedder = cast(SegmentEmbedder, self.embedder)
        by_segment: dict[tuple[str, int], list[Window]] = defaultdict(list)
        for w in windows:
            by_segment[(w.content_id, w.segment_index)].append(w)
        items = [(seg, by_segment[(cid, index)]) for cid, segs in groupby(spans, key=lambda s: s.content_id)
                 for index, seg in enumerate(segs) if (cid, index) in by_segment]
        feeder = Prefetcher(lambda item: featurize_segment(embedder, self.cache_dir, item[0]), self.cfg.prefetch)
        for (seg, mine), feats in zip(items, feeder.run(items)):
            yield embed_segment(embedder, seg, mine, feats)

    def _in_speech(self, windows: list[Window]) -> list[Window]:
        """The windows whose centre lies in the segmentation model's speech; all of a content's windows
        when none does (or its audio is gone), so a content is never left without windows by this."""
        assert self.segmenter is not None
        kept: list[Window] = []
        for cid, group in groupby(windows, key=lambda w: w.content_id):
            mine = list(group)
            regions = self.model_regions(cid)
            if regions is None:
                kept += mine
                continue
            inside = [w for w in mine if _inside(regions.speech, w.center_sample)]
            kept += inside or mine
        return kept

    def model_regions(self, content_id: str) -> SegmentationRegions | None:
        """The segmentation model's speech and overlap in a content (once per group); None without the
        model or the audio."""
        if self.segmenter is None:
            return None
        if content_id not in self._model_regions:
            try:
                pcm = open_pcm(pcm_path(self.cache_dir, content_id))
            except OSError:
                self._model_regions[content_id] = None
            else:
                self._model_regions[content_id] = segment_speech(
                    self.segmenter, pcm, self.cfg.segmentation_hop_s, spans=_merged(self._speech.get(content_id)))
        return self._model_regions[content_id]

    def label_content(self, content_id: str, segs: list[Span], embedded: dict[Window, np.ndarray],
                      failed: list[WindowFailure]) -> ContentSpeakers:
        """Cluster one content's windows and cut its segments into speaker spans."""
        windows = [w for w in make_windows(segs, self.cfg.window_samples, self.cfg.hop_samples) if w in embedded]
        if not windows:
            return ContentSpeakers(content_id, (), 0, tuple(failed))
        labels = label_windows(np.stack([embedded[w] for w in windows]), self.cfg)
        boundary = self._boundary(content_id)
        by_segment: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(windows):
            by_segment[w.segment_index].append(i)
        spans = []
        for index, seg in enumerate(segs):
            idx = by_segment.get(index, [])
            seg_labels = majority_filter([int(labels[i]) for i in idx], self.cfg.smoothing)
            spans += segment_spans(seg.start_sample, seg.end_sample, [windows[i].center_sample for i in idx],
                                   seg_labels, boundary)
        if self.regions == "trim":
            spans = self._trimmed(content_id, spans)
        names = first_appearance_order(np.array([label for _, _, label in spans]))
        regions = self.model_regions(content_id)
        return ContentSpeakers(content_id, tuple(SpeakerSpan(content_id, s, e, f"S{n + 1}")
                                                 for (s, e, _), n in zip(spans, names.tolist())),
                               int(names.max()) + 1, tuple(failed),
                               tuple(regions.overlap) if regions is not None else None)

    def _trimmed(self, content_id: str, spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """``spans`` cut to the segmentation model's speech; as they are when that leaves nothing."""
        regions = self.model_regions(content_id)
        trimmed = trim_spans(spans, regions.speech) if regions is not None else []
        return trimmed or spans

    def _boundary(self, content_id: str) -> Callable[[int, int], int]:
        """Where a change between two window centres goes (``speakers.boundary``): halfway, or the quietest
        point there (halfway if the audio is gone)."""
        if self.cfg.boundary == "midpoint":
            return midpoint
        try:
            pcm = open_pcm(pcm_path(self.cache_dir, content_id))
        except OSError:
            return midpoint
        return lambda lo, hi: quietest_sample(pcm, lo, min(hi, len(pcm)))

    def summary(self) -> dict:
        """``SpeakersSummary.as_dict()`` of everything :meth:`run` labelled so far."""
        return self.figures().as_dict()

    def figures(self) -> SpeakersSummary:
        """The figures of everything :meth:`run` labelled so far."""
        counts = self.speakers_per_content
        if self.windows:
            _log.info("speakers: %d recordings, %d windows in %.1f s, %d failed windows", len(counts),
                      self.windows, self.wall_s, self.failed_windows)
        return SpeakersSummary(
            recordings=len(counts), windows=self.windows, failed_windows=self.failed_windows,
            failed_recordings=sum(n == 0 for n in counts.values()), audio_s=self.audio_samples / SAMPLE_RATE,
            embed_s=self.embed_s, wall_s=self.wall_s, batches=self.batches, oom_splits=self.splits,
            device=str(self.embedder.device), backend=self.embedder.name, regions=self.regions,
            speakers_per_recording=dict(counts),
        )


def _inside(regions: list[tuple[int, int]], sample: int) -> bool:
    """``sample`` lies in one of ``regions`` (sorted, non-overlapping [start, end) samples)."""
    i = bisect_right(regions, (sample, np.iinfo(np.int64).max)) - 1
    return i >= 0 and regions[i][0] <= sample < regions[i][1]


def _merged(spans: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
    """Sorted sample ranges with overlapping ones joined; None stays None (no restriction)."""
    if spans is None:
        return None
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def spectral_params(cfg: SpeakersConfig) -> SpectralParams:
    """The spectral clustering options of a speakers config."""
    return SpectralParams(ClusterParams.of(cfg), cfg.pval)


def label_windows(embeddings: np.ndarray, cfg: SpeakersConfig) -> np.ndarray:
    """One recording's window labels by the configured clustering (``speakers.clustering``, ``auto`` resolved)."""
    if cfg.resolved_clustering == "spectral":
        return spectral_windows(embeddings, spectral_params(cfg))
    return cluster_windows(embeddings, ClusterParams.of(cfg))


def results_table(results: Sequence[ContentSpeakers]) -> pa.Table:
    """The ``SPEAKER_RESULTS`` rows of some contents: spans, window failures and overlap regions in time
    order (one empty overlap row [0, 0) where the segmentation model ran and found none), and one row
    with null samples for a content that got no span at all (its first window error says why)."""
    rows = []
    for r in results:
        if not r.spans:
            first = f" (first error: {r.failures[0].error})" if r.failures else ""
            rows.append(_row(r.content_id, None, None, None, NO_WINDOWS + first))
            continue
        rows += [_row(r.content_id, s.start_sample, s.end_sample, s.speaker, None) for s in r.spans]
        rows += [_row(r.content_id, f.window.start_sample, f.window.end_sample, None, f.error) for f in r.failures]
        if r.overlap is not None:
            rows += [{**_row(r.content_id, s, e, None, None), "status": "overlap"} for s, e in r.overlap or ((0, 0),)]
    rows.sort(key=lambda row: (row["content_id"], row["start_sample"] or 0, row["status"]))
    return to_table(rows, SPEAKER_RESULTS)


def _row(content_id: str, start: int | None, end: int | None, speaker: str | None, error: str | None) -> dict:
    return {"content_id": content_id, "start_sample": start, "end_sample": end, "speaker": speaker,
            "status": "failed" if error else "ok", "error": error}

