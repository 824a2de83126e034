"""The asr stage: packed batches + PCM cache -> transcript part files.

One part file per group of ``batches_per_part`` batches, written atomically, so a rerun after a
crash skips the parts already there and the final tables come out identical to an uninterrupted
run. Every segment of every batch ends up as exactly one row: decoded (``ok``) or ``failed`` with a
reason a person can act on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from asr.config import AsrConfig
from asr.features import FeatureFeeder, start_worker_server
from asr.infer import decode_batch, decode_features
from asr.model import load_model, resolve_device
from asr.types import (
    AsrSummary,
    BatchMetrics,
    BatchPlan,
    FeatureBatch,
    LoadedModel,
    SegmentResult,
)
from core.cache import SAMPLE_RATE
from core.tables import TRANSCRIPTS, to_table, write_table
from core.text import join_tokens
from core.types import Segment

_log = logging.getLogger("vadpack.asr")
Log = Callable[[str], object] | logging.Logger | None


@dataclass(frozen=True, slots=True)
class PartGroup:
    """The batches that go into one part file."""

    path: Path
    plans: tuple[BatchPlan, ...]


def run_asr(batches: pa.Table, segments: pa.Table, cache_dir: Path, parts_dir: Path, cfg: AsrConfig,
            progress: bool = True, log: Log = None) -> dict:
    """Decode every batch and write transcript part files, skipping parts an earlier run wrote.

    Args:
        batches: the packer's table (``core.tables.BATCHES``).
        segments: the vad stage's table (``core.tables.VAD_SEGMENTS``).
        cache_dir: the PCM cache folder.
        parts_dir: where ``part-{first_batch_id:06d}.parquet`` files go.
        cfg: the asr config.
        progress: show a progress bar (only on a terminal).
        log: a logger, a print-like callable, or None for the ``vadpack.asr`` logger. Per-batch
            metrics go to DEBUG on a logger, and to the callable as they come.

    Returns:
        ``AsrSummary.as_dict()``: audio and wall seconds, x-realtime, model_busy, batches, failures.

    Raises:
        ValueError: a batch names a segment the segments table does not have.
    """
    say, detail = _log_functions(log)
    groups = part_groups(batch_plans(batches, segments), cfg.batches_per_part, Path(parts_dir))
    todo = [g for g in groups if not g.path.exists()]
    if len(todo) < len(groups):
        say(f"asr: {len(groups) - len(todo)} of {len(groups)} part files already written; resuming")
    if not todo:
        return AsrSummary(parts_skipped=len(groups), model=cfg.model).as_dict()
    t_load = time.perf_counter()
    cfg = replace(cfg, feature_workers=cfg.feature_workers_for(resolve_device(cfg.device).type))
    if cfg.feature_workers > 0:
        start_worker_server()
    lm = load_model(cfg)
    load_s = time.perf_counter() - t_load
    run = Decoder(lm, cfg, detail)
    run.decode_groups(todo, Path(cache_dir), progress)
    summary = run.summary(load_s, parts_skipped=len(groups) - len(todo))
    say(f"asr: {summary.audio_s:.0f} s of audio in {summary.wall_s:.1f} s ({summary.xrt:.1f}x realtime), "
        f"model busy {summary.model_busy:.0%}, {summary.batches} batches, {summary.failed_segments} failed")
    return summary.as_dict()


def batch_plans(batches: pa.Table, segments: pa.Table) -> list[BatchPlan]:
    """The batches in batch_id order, each with its segments' sample ranges.

    Raises:
        ValueError: a batch names a segment the segments table does not have.
    """
    columns = ("recording_id", "segment_index", "start_sample", "end_sample")
    spans = {(r, i): (s, e) for r, i, s, e in zip(*(segments[c].to_pylist() for c in columns))}
    plans = []
    for bid, rids, idxs in sorted(zip(*(batches[c].to_pylist()
                                        for c in ("batch_id", "recording_ids", "segment_indices")))):
        keys = list(zip(rids, idxs))
        missing = [k for k in keys if k not in spans]
        if missing:
            raise ValueError(f"batch {bid} names segment {missing[0][0]}#{missing[0][1]}, which is not in "
                             "the segments table; rerun the pack stage (vadpack run CONFIG --from pack)")
        plans.append(BatchPlan(bid, tuple(Segment(r, i, *spans[(r, i)]) for r, i in keys)))
    return plans


def part_groups(plans: list[BatchPlan], batches_per_part: int, parts_dir: Path) -> list[PartGroup]:
    """Consecutive runs of ``batches_per_part`` batches, each named after its first batch id."""
    groups = []
    for start in range(0, len(plans), batches_per_part):
        chunk = tuple(plans[start: start + batches_per_part])
        groups.append(PartGroup(parts_dir / f"part-{chunk[0].batch_id:06d}.parquet", chunk))
    return groups


class Decoder:
    """Decodes part groups with one loaded model and keeps the running figures.

    The local engine makes one per run; the Ray engine one per actor and group.
    """

    def __init__(self, lm: LoadedModel, cfg: AsrConfig, detail: Callable[[str], object]) -> None:
        self.lm, self.cfg, self.detail = lm, cfg, detail
        self.metrics: list[BatchMetrics] = []
        self.parts_written = 0
        self.feature_retries = 0
        self.wall_s = 0.0

    def decode_groups(self, groups: list[PartGroup], cache_dir: Path, progress: bool) -> None:
        t0 = time.perf_counter()
        if self.cfg.warmup:
            self._warm_up()
        plans = [plan for group in groups for plan in group.plans]
        with FeatureFeeder(self.lm.frontend_info, cache_dir, self.cfg.feature_workers, self.cfg.prefetch,
                           frontend=self.lm.frontend) as feeder, _progress_bar(len(plans), progress) as bar:
            batches = feeder.feed(plans)
            for group in groups:
                rows = []
                for plan in group.plans:
                    rows += self._one_batch(plan, batches)
                    bar.update(1)
                _write_part(group.path, rows, self.lm)
                self.parts_written += 1
            self.feature_retries = len(set(feeder.retried))
        self.wall_s = time.perf_counter() - t0

    def _one_batch(self, plan: BatchPlan, batches: Iterator[FeatureBatch]) -> list[dict]:
        t0 = time.perf_counter()
        fb = next(batches)
        assert fb.batch_id == plan.batch_id, "features arrived out of order"
        _reset_peak(self.lm.device)
        t_model = time.perf_counter()
        outcome = decode_batch(self.lm, fb) if fb.n_items else None
        model_ms = (time.perf_counter() - t_model) * 1000
        results = dict(zip(fb.items, outcome.results)) if outcome else {}
        results.update({item: SegmentResult(error=reason) for item, reason in fb.failed})
        metrics = _metrics(plan, fb, results, (time.perf_counter() - t0) * 1000, model_ms,
                           outcome.splits if outcome else 0, self.lm)
        self.metrics.append(metrics)
        self.detail(metrics.describe())
        return [transcript_row(item, plan.batch_id, results[item]) for item in plan.items]

    def _warm_up(self) -> None:
        """Decode a small dummy batch so the first timed batch does not pay for kernel start-up."""
        frames = 100
        feats = np.zeros((1, frames, self.lm.frontend_info.feature_dim), dtype=np.float32)
        try:
            decode_features(self.lm, feats, np.array([frames]), [frames * self.lm.frontend_info.lfr_frame_ms])
        except torch.OutOfMemoryError:
            self.detail("asr: warm-up ran out of memory; continuing without it")

    def summary(self, load_s: float, parts_skipped: int) -> AsrSummary:
        m = self.metrics
        audio_s, model_s = sum(x.audio_s for x in m), sum(x.model_ms for x in m) / 1000
        wall_s = max(self.wall_s, 1e-9)
        return AsrSummary(
            audio_s=audio_s, wall_s=self.wall_s, load_s=load_s, model_s=model_s, xrt=audio_s / wall_s,
            model_busy=model_s / wall_s, batches=len(m), segments=sum(x.n_items for x in m),
            failed_segments=sum(x.failed for x in m), parts_written=self.parts_written,
            parts_skipped=parts_skipped, oom_splits=sum(x.splits for x in m),
            feature_retries=self.feature_retries, peak_cuda_mb=max((x.peak_cuda_mb for x in m), default=0.0),
            device=str(self.lm.device), model=self.lm.name,
        )


def transcript_row(item: Segment, batch_id: int, result: SegmentResult) -> dict:
    """One TRANSCRIPTS row: a decoded segment, or a failed one with its reason.

    The text is joined script-aware here (``@@`` pieces merged, no spaces between CJK characters),
    once per segment while the model runs, so stitching a large archive needs no per-token Python.
    """
    return {
        "recording_id": item.recording_id, "segment_index": item.segment_index, "batch_id": batch_id,
        "text": join_tokens(result.tokens) if result.ok else "", "tokens": list(result.tokens),
        "token_start_ms": list(result.token_start_ms), "token_end_ms": list(result.token_end_ms),
        "status": "ok" if result.ok else "failed", "error": result.error,
    }


def _write_part(path: Path, rows: list[dict], lm: LoadedModel) -> None:
    write_table(to_table(rows, TRANSCRIPTS), path, metadata={"model": lm.name, "model_class": lm.model_class})


def _metrics(plan: BatchPlan, fb: FeatureBatch, results: dict[Segment, SegmentResult], wall_ms: float,
             model_ms: float, splits: int, lm: LoadedModel) -> BatchMetrics:
    frame_s = lm.frontend_info.lfr_frame_ms / 1000
    return BatchMetrics(
        batch_id=plan.batch_id, n_items=len(plan.items),
        padded_s=fb.n_items * int(fb.frames.max(initial=0)) * frame_s,  # what the model computed
        audio_s=sum(item.n_samples for item in plan.items) / SAMPLE_RATE,
        wall_ms=wall_ms, model_ms=model_ms, peak_cuda_mb=_peak_mb(lm.device), splits=splits,
        failed=sum(not r.ok for r in results.values()),
    )


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def _progress_bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="batch", desc="asr", disable=not progress or not sys.stderr.isatty())


def _log_functions(log: Log) -> tuple[Callable[[str], object], Callable[[str], object]]:
    """(summary, per-batch detail) writers for a logger, a print-like callable, or None."""
    if log is None:
        log = _log
    if isinstance(log, logging.Logger):
        return log.info, log.debug
    return log, log
