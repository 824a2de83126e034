"""The asr stage: packed batches + PCM cache -> transcript part files in a content-keyed store.

The store folder holds part files of TRANSCRIPTS rows keyed by span (content_id, start_sample,
end_sample), one part per group of ``batches_per_part`` batches, each written atomically. A span
that already has an ``ok`` row there is never decoded again: a rerun after a crash, or a batch
whose spans an earlier run decoded, costs only what is missing. Every span of every batch ends up
as exactly one new row: decoded (``ok``) or ``failed`` with a reason a person can act on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from vadpack.asr.budget import measure_memory as measure_memory  # the pipeline's budget plan asks it
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import FeatureFeeder, start_worker_server
from vadpack.asr.infer import decode_batch, decode_features
from vadpack.asr.model import bit_exact_batches, load_model, resolve_device, row_summary
from vadpack.asr.model import device_info as device_info  # the pipeline describes the device with it
from vadpack.asr.replicas import Layout, plan_layout, run_replicas, silence_child_interrupts
from vadpack.asr.types import (
    AsrSummary,
    BatchMetrics,
    BatchPlan,
    FeatureBatch,
    LoadedModel,
    SegmentResult,
)
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.faults import fault_arg, fault_point
from vadpack.core.partstore import PartStore, transcript_store
from vadpack.core.progress import progress_bar
from vadpack.core.tables import TRANSCRIPTS, to_table
from vadpack.core.text import join_tokens
from vadpack.core.types import Span

_log = logging.getLogger("vadpack.asr")
Log = Callable[[str], object] | logging.Logger | None


@dataclass(frozen=True, slots=True)
class PartGroup:
    """The batches that go into one part file (``path``, a new part of ``store``)."""

    store: PartStore
    path: Path
    plans: tuple[BatchPlan, ...]


def run_asr(batches: pa.Table, cache_dir: Path, store_dir: PartStore | Path, cfg: AsrConfig, progress: bool = True,
            log: Log = None) -> AsrSummary:
    """Decode the spans of every batch that the store does not hold yet, writing part files.

    Args:
        batches: the packer's table (``core.tables.BATCHES``).
        cache_dir: the PCM cache folder (one ``<content_id>.s16`` per recording's content).
        store_dir: the transcript store of this model and settings (or its folder); parts are added to it.
        cfg: the asr config.
        progress: show a progress bar (only on a terminal).
        log: a logger, a print-like callable, or None for the ``vadpack.asr`` logger. Per-batch
            metrics go to DEBUG on a logger, and to the callable as they come.

    Returns:
        The stage's figures (``AsrSummary``): decoded audio and wall seconds, x-realtime, model_busy, batches,
        failures, and the spans of the batches that were already in the store.
    """
    say, detail = _log_functions(log)
    groups, already = plan_work(batches, store_dir, cfg.batches_per_part)
    if already:
        say(f"asr: {already} segments of these batches are already in the store; decoding the rest")
    if not groups:
        return AsrSummary(already_stored=already, model=cfg.model)
    n_batches = sum(len(g.plans) for g in groups)
    audio_s = sum(item.n_samples for g in groups for plan in g.plans for item in plan.items) / SAMPLE_RATE
    layout = plan_layout(cfg, n_batches, torch.cuda.device_count(), weights_bytes(cfg.model), audio_s)
    if layout.replicas > 1:
        plans = [plan for g in groups for plan in g.plans]  # the same plans, regrouped for the queue
        groups = part_groups(plans, group_sizes(len(plans), cfg.batches_per_part, layout.replicas), groups[0].store)
        summary = decode_in_replicas(groups, Path(cache_dir), cfg, layout, progress, detail)
        summary = replace(summary, already_stored=already)
        say(f"asr: {layout.describe()}: {summary.audio_s:.0f} s of audio in {summary.wall_s:.1f} s "
            f"({summary.xrt:.1f}x realtime), {summary.batches} batches, {summary.failed_segments} failed")
        return summary
    run = start_decoder(cfg, detail)
    run.decode_groups(groups, Path(cache_dir), progress)
    summary = run.summary(already_stored=already)
    say(f"asr: {summary.audio_s:.0f} s of audio in {summary.wall_s:.1f} s ({summary.xrt:.1f}x realtime), "
        f"model busy {summary.model_busy:.0%}, {summary.batches} batches, {summary.failed_segments} failed")
    return summary


def start_decoder(cfg: AsrConfig, detail: Callable[[str], object]) -> Decoder:
    """Start decoding in this process: feature workers resolved for the device, their server started,
    the model loaded. The one start-up of every decoding process: the run itself, a replica, a Ray actor.

    Args:
        cfg: the asr config (``feature_workers`` ``auto`` resolves here, for the device).
        detail: where per-batch lines go.

    Returns:
        A Decoder holding the loaded model; its ``load_s`` is what this start-up took.
    """
    t_load = time.perf_counter()
    cfg = replace(cfg, feature_workers=cfg.feature_workers_for(resolve_device(cfg.device).type))
    if cfg.feature_workers > 0:
        start_worker_server()
        fault_point("asr.feature_server_started")
    lm = load_model(cfg)
    return Decoder(lm, cfg, detail, load_s=time.perf_counter() - t_load)


def weights_bytes(model: str) -> int:
    """The size of a local model's weights (a hub model: 1 GB, about Paraformer-large's)."""
    path = Path(model).expanduser() / "model.pt"
    return path.stat().st_size if path.is_file() else 2**30


def decode_in_replicas(groups: list[PartGroup], cache_dir: Path, cfg: AsrConfig, layout: Layout,
                       progress: bool, detail: Callable[[str], object]) -> AsrSummary:
    """Decode ``groups`` with ``layout.replicas`` processes taking groups from one queue."""
    summaries: list[AsrSummary] = []
    rss_mb: list[float] = []
    t0 = time.perf_counter()
    with progress_bar(sum(len(g.plans) for g in groups), "batch", "asr", progress) as bar:

        def on_message(replica: int, kind: str, payload: object) -> None:
            if kind == "log":
                detail(f"replica {replica}: {payload}")
            elif kind == "group":
                bar.update(payload)
            elif kind == "summary":
                summaries.append(AsrSummary(**payload["summary"]))
                rss_mb.append(payload["peak_rss_mb"])

        def args_of(i: int) -> tuple:
            return (replace(cfg, device=layout.devices[i], threads=layout.threads, replicas=1), groups, cache_dir)

        run_replicas(replica_main, args_of, layout.replicas, len(groups), on_message)
    return merge_summaries(summaries, time.perf_counter() - t0, layout, rss_mb)


def replica_main(index: int, tasks, messages, cfg: AsrConfig, groups: list[PartGroup], cache_dir: Path) -> None:
    """One replica (in its own process): load the model, decode groups from the queue until told to stop."""
    import resource

    silence_child_interrupts()
    run = start_decoder(cfg, lambda msg: messages.put((index, "log", msg)))
    while True:
        task = tasks.get()
        if fault_arg("asr_replica_crash") == str(index):
            os._exit(70)  # test-only (VADPACK_FAULTS): a replica dies holding a task, as a native crash would
        if task is None:
            break
        run.decode_groups([groups[task]], cache_dir, progress=False)
        messages.put((index, "group", len(groups[task].plans)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    messages.put((index, "summary", {"summary": run.summary().as_dict(), "peak_rss_mb": peak_mb}))


def merge_summaries(parts: list[AsrSummary], wall_s: float, layout: Layout, rss_mb: list[float]) -> AsrSummary:
    """One stage summary from the replicas': sums, the slowest replica's decoding time, the largest peaks."""
    audio_s, model_s = sum(p.audio_s for p in parts), sum(p.model_s for p in parts)
    decode_s = max((p.wall_s for p in parts), default=wall_s)
    return AsrSummary(
        audio_s=audio_s, wall_s=decode_s, load_s=max((p.load_s for p in parts), default=0.0), model_s=model_s,
        xrt=audio_s / max(decode_s, 1e-9), model_busy=model_s / max(sum(p.wall_s for p in parts), 1e-9),
        batches=sum(p.batches for p in parts), segments=sum(p.segments for p in parts),
        failed_segments=sum(p.failed_segments for p in parts), parts_written=sum(p.parts_written for p in parts),
        oom_splits=sum(p.oom_splits for p in parts), feature_retries=sum(p.feature_retries for p in parts),
        peak_cuda_mb=max((p.peak_cuda_mb for p in parts), default=0.0),
        device=", ".join(sorted(set(layout.devices))), model=parts[0].model if parts else "",
        replicas=layout.replicas, threads_per_replica=layout.threads,
        replica_peak_rss_mb=max(rss_mb, default=0.0),
        batch_invariant=bool(parts) and all(p.batch_invariant for p in parts),
        row_probe=next((p.row_probe for p in parts if p.row_probe), ""),
    )


def plan_work(batches: pa.Table, store_dir: PartStore | Path, batches_per_part: int) -> tuple[list[PartGroup], int]:
    """Part groups of the spans still to decode, and how many spans the store already holds.

    A batch keeps its id and its order; spans with an ``ok`` row in ``store_dir`` leave it (padding
    invariance makes the rest decode as they would have in the full batch), and a batch left empty
    is dropped.
    """
    store = store_dir if isinstance(store_dir, PartStore) else transcript_store(Path(store_dir))
    done = set(zip(*(column.to_pylist() for column in store.done().columns)))
    plans, already = [], 0
    for plan in batch_plans(batches):
        todo = tuple(item for item in plan.items if (item.content_id, item.start_sample, item.end_sample) not in done)
        already += len(plan.items) - len(todo)
        if todo:
            plans.append(BatchPlan(plan.batch_id, todo))
    return part_groups(plans, group_sizes(len(plans), batches_per_part), store), already


def group_sizes(n_batches: int, batches_per_part: int, replicas: int = 1) -> list[int]:
    """How many batches each part group takes, in queue order.

    One process: ``batches_per_part`` each. Several replicas take groups from one queue, and the run
    ends when the last one finishes its last group, so a big group at the end keeps the others idle:
    with groups of 8, 57 batches on 2 replicas split 32 / 25 and the run waited 10 s for one replica
    (1 h archive, 2 CPU replicas). Here each group takes a share of what is left (guided scheduling:
    remaining / (2 x replicas), at most ``batches_per_part``), so groups shrink to one batch at the
    end and the replicas finish within about a batch of each other.
    """
    if replicas <= 1:
        full, rest = divmod(n_batches, batches_per_part)
        return [batches_per_part] * full + ([rest] if rest else [])
    sizes, left = [], n_batches
    while left > 0:
        size = max(1, min(batches_per_part, -(-left // (2 * replicas))))
        sizes.append(size)
        left -= size
    return sizes


def batch_plans(batches: pa.Table) -> list[BatchPlan]:
    """The batches in batch_id order, each with its spans."""
    columns = ("batch_id", "content_ids", "start_samples", "end_samples")
    return [BatchPlan(bid, tuple(Span(c, s, e) for c, s, e in zip(cids, starts, ends)))
            for bid, cids, starts, ends in sorted(zip(*(batches[c].to_pylist() for c in columns)))]


def part_groups(plans: list[BatchPlan], sizes: list[int], store: PartStore) -> list[PartGroup]:
    """Consecutive runs of ``sizes[i]`` batches (``group_sizes``), each to be a new part of ``store``."""
    groups, start = [], 0
    for size, path in zip(sizes, store.new_parts(len(sizes))):
        groups.append(PartGroup(store, path, tuple(plans[start: start + size])))
        start += size
    return groups


class Decoder:
    """Decodes part groups with one loaded model and keeps the running figures.

    Made by :func:`start_decoder`: one per run, per replica, per Ray actor.
    """

    def __init__(self, lm: LoadedModel, cfg: AsrConfig, detail: Callable[[str], object], load_s: float = 0.0) -> None:
        self.lm, self.cfg, self.detail, self.load_s = lm, cfg, detail, load_s
        self.metrics: list[BatchMetrics] = []
        self.parts_written = 0
        self.feature_retries = 0
        self.wall_s = 0.0

    def decode_groups(self, groups: list[PartGroup], cache_dir: Path, progress: bool) -> None:
        t0 = time.perf_counter()
        if self.cfg.warmup and not self.metrics:
            self._warm_up()
        plans = [plan for group in groups for plan in group.plans]
        with (FeatureFeeder(self.lm.frontend_info, cache_dir, self.cfg.feature_workers, self.cfg.prefetch,
                            frontend=self.lm.frontend) as feeder,
              progress_bar(len(plans), "batch", "asr", progress) as bar):
            batches = feeder.feed(plans)
            for group in groups:
                rows = []
                for plan in group.plans:
                    rows += self._one_batch(plan, batches)
                    bar.update(1)
                _write_part(group, rows, self.lm)
                fault_point("asr.part_written")
                self.parts_written += 1
            self.feature_retries = len(set(feeder.retried))
        self.wall_s += time.perf_counter() - t0

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

    def summary(self, already_stored: int = 0) -> AsrSummary:
        """The figures of every group decoded so far (model loading: ``load_s``)."""
        m = self.metrics
        audio_s, model_s = sum(x.audio_s for x in m), sum(x.model_ms for x in m) / 1000
        wall_s = max(self.wall_s, 1e-9)
        return AsrSummary(
            audio_s=audio_s, wall_s=self.wall_s, load_s=self.load_s, model_s=model_s, xrt=audio_s / wall_s,
            model_busy=model_s / wall_s, batches=len(m), segments=sum(x.n_items for x in m),
            failed_segments=sum(x.failed for x in m), parts_written=self.parts_written,
            already_stored=already_stored, oom_splits=sum(x.splits for x in m),
            feature_retries=self.feature_retries, peak_cuda_mb=max((x.peak_cuda_mb for x in m), default=0.0),
            device=str(self.lm.device), model=self.lm.name, threads_per_replica=torch.get_num_threads(),
            batch_invariant=bit_exact_batches(self.lm), row_probe=row_summary(self.lm),
        )


def transcript_row(item: Span, batch_id: int, result: SegmentResult) -> dict:
    """One TRANSCRIPTS row: a decoded span, or a failed one with its reason.

    The text is joined script-aware here (``@@`` pieces merged, no spaces between CJK characters),
    once per segment while the model runs, so stitching a large archive needs no per-token Python.
    It is the same rule for every family, so the text holds no tags: SenseVoice's language, emotion
    and event are in their own columns (null for Paraformer, which does not tell them).
    """
    return {
        "content_id": item.content_id, "start_sample": item.start_sample, "end_sample": item.end_sample,
        "batch_id": batch_id,
        "text": join_tokens(result.tokens) if result.ok else "", "tokens": list(result.tokens),
        "token_start_ms": list(result.token_start_ms), "token_end_ms": list(result.token_end_ms),
        "language": result.language, "emotion": result.emotion, "event": result.event,
        "status": "ok" if result.ok else "failed", "error": result.error,
    }


def _write_part(group: PartGroup, rows: list[dict], lm: LoadedModel) -> None:
    group.store.write_part(group.path, to_table(rows, TRANSCRIPTS),
                           metadata={"model": lm.name, "model_class": lm.model_class, "family": lm.family.name})


def _metrics(plan: BatchPlan, fb: FeatureBatch, results: dict[Span, SegmentResult], wall_ms: float,
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


def _log_functions(log: Log) -> tuple[Callable[[str], object], Callable[[str], object]]:
    """(summary, per-batch detail) writers for a logger, a print-like callable, or None."""
    if log is None:
        log = _log
    if isinstance(log, logging.Logger):
        return log.info, log.debug
    return log, log
