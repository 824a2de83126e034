"""The five stages as functions from work_dir tables to work_dir tables. The runner wires them.

Each stage function takes a StageContext and returns a StageResult; none of them knows about the CLI
or about manifests.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.compute as pc

from pipeline.cache import SAMPLE_RATE, pcm_dir
from pipeline.config import Config
from pipeline.configtools import stable_hash
from pipeline.tables import (
    BATCHES,
    RECORDINGS,
    VAD_RECORDINGS,
    VAD_SEGMENTS,
    read_table,
    to_table,
    write_table,
)
from pipeline.types import RecordingRef
from vad.types import VadOutcome

log = logging.getLogger("vadpack")

STAGES = ("scan", "vad", "pack", "asr", "stitch")
# asr keys that change speed, never results: changing them does not make the asr stage stale.
ASR_PERF_ONLY = ("threads", "feature_workers", "prefetch", "warmup")


@dataclass(frozen=True, slots=True)
class StageContext:
    cfg: Config
    work: Path
    progress: bool = True


@dataclass(frozen=True, slots=True)
class StageResult:
    rows: int
    summary: dict = field(default_factory=dict)


def work_files(work: Path) -> dict[str, list[Path]]:
    """The artifacts each stage writes in work_dir (what its output fingerprint covers)."""
    return {
        "scan": [work / "recordings.parquet"],
        "vad": [work / "segments.parquet", work / "vad_recordings.parquet"],
        "pack": [work / "batches.parquet"],
        "asr": [work / "transcripts"],
        "stitch": [],  # set from output_dir by output_files()
    }


def stage_config_hash(cfg: Config, stage: str) -> str:
    """The hash of the config a stage's result depends on."""
    if stage == "scan":
        return stable_hash({"inputs": [cfg.resolve_input(i) for i in cfg.inputs]})
    if stage == "vad":
        from vad.stage import vad_hash

        return vad_hash(cfg.vad)  # leaves out vad.workers, which changes speed, not segments
    if stage == "pack":
        return stable_hash(cfg.packer)
    if stage == "asr":
        return stable_hash(replace(cfg.asr, **{k: getattr(type(cfg.asr)(), k) for k in ASR_PERF_ONLY}))
    return stable_hash({"stitch": cfg.stitch, "output_dir": str(cfg.output_path), "model": cfg.asr.model})


# ---- scan -------------------------------------------------------------------------------------

def run_scan(ctx: StageContext) -> StageResult:
    from pipeline.scan import list_inputs, scan

    paths, notes = list_inputs(ctx.cfg)
    for note in notes:
        log.warning(note)
    table = scan(paths)
    write_table(table, ctx.work / "recordings.parquet")
    failed = pc.sum(pc.equal(table["status"], "failed")).as_py() or 0
    seconds = pc.sum(table["duration_s"]).as_py() or 0.0
    return StageResult(table.num_rows, {"files": table.num_rows, "failed": failed, "audio_h": seconds / 3600})


# ---- vad --------------------------------------------------------------------------------------

def run_vad(ctx: StageContext) -> StageResult:
    recs = read_table(ctx.work / "recordings.parquet", RECORDINGS).to_pylist()
    refs = [RecordingRef(r["recording_id"], r["path"]) for r in recs if r["status"] == "ok"]
    cache = pcm_dir(ctx.work)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seg_rows, rec_rows = vad_rows(vad_outcomes(ctx, refs, cache), ctx.cfg.vad.backend)
    wall = time.perf_counter() - t0
    write_table(to_table(seg_rows, VAD_SEGMENTS), ctx.work / "segments.parquet")
    write_table(to_table(rec_rows, VAD_RECORDINGS), ctx.work / "vad_recordings.parquet")
    audio_s = sum(r["n_samples"] for r in rec_rows) / SAMPLE_RATE
    failed = sum(r["status"] == "failed" for r in rec_rows)
    return StageResult(len(seg_rows), {"segments": len(seg_rows), "failed": failed, "audio_h": audio_s / 3600,
                                       "xrt": audio_s / max(wall, 1e-9)})


def vad_outcomes(ctx: StageContext, refs: list[RecordingRef], cache: Path) -> Iterator[VadOutcome]:
    """One VadOutcome per recording, from the configured engine."""
    if ctx.cfg.engine == "ray":
        from pipeline.engines.ray_engine import ray_vad

        return ray_vad(refs, cache, ctx.cfg.vad, ctx.cfg.ray)
    from vad.stage import run_vad as vad_stage

    return vad_stage(refs, cache, ctx.cfg.vad, progress=ctx.progress)


def vad_rows(outcomes: Iterable[VadOutcome], backend: str) -> tuple[list[dict], list[dict]]:
    """Rows of the segments and vad_recordings tables, sorted, whatever order outcomes came in."""
    seg_rows, rec_rows = [], []
    for out in outcomes:
        rec_rows.append({"recording_id": out.recording_id, "n_samples": out.n_samples,
                         "n_segments": len(out.segments), "speech_samples": sum(s.n_samples for s in out.segments),
                         "status": "failed" if out.error else "ok", "error": out.error, "warning": out.warning})
        seg_rows += [{"recording_id": s.recording_id, "segment_index": s.index, "start_sample": s.start_sample,
                      "end_sample": s.end_sample, "backend": backend} for s in out.segments]
    seg_rows.sort(key=lambda r: (r["recording_id"], r["segment_index"]))
    rec_rows.sort(key=lambda r: r["recording_id"])
    return seg_rows, rec_rows


# ---- pack -------------------------------------------------------------------------------------

def run_pack(ctx: StageContext) -> StageResult:
    from packer.pack import pack_segments

    segments = read_table(ctx.work / "segments.parquet", VAD_SEGMENTS)
    budget_s = resolve_budget_s(ctx.cfg)
    result = pack_segments(segments, ctx.cfg.packer, budget_s=budget_s)
    for w in result.warnings:
        log.warning(w)
    table = result.batches.cast(BATCHES)
    write_table(table, ctx.work / "batches.parquet")
    real = pc.sum(table["real_frames"]).as_py() or 0
    padded = pc.sum(table["padded_frames"]).as_py() or 0
    return StageResult(table.num_rows, {"batches": table.num_rows, "budget_s": budget_s,
                                        "padding_efficiency": real / padded if padded else 1.0})


def resolve_budget_s(cfg: Config) -> float:
    """The padded-seconds budget: the configured number, or measured on CUDA for ``auto``."""
    if cfg.packer.budget_s != "auto":
        return float(cfg.packer.budget_s)
    from asr.budget import auto_budget_for

    return auto_budget_for(cfg.asr, cfg.packer)


# ---- asr --------------------------------------------------------------------------------------

def run_asr(ctx: StageContext) -> StageResult:
    from asr.stage import run_asr as asr_stage

    batches = read_table(ctx.work / "batches.parquet", BATCHES)
    segments = read_table(ctx.work / "segments.parquet", VAD_SEGMENTS)
    parts = ctx.work / "transcripts"
    if ctx.cfg.engine == "ray":
        from asr.stage import batch_plans, part_groups
        from pipeline.engines.ray_engine import ray_asr

        groups = part_groups(batch_plans(batches, segments), ctx.cfg.asr.batches_per_part, parts)
        summary = ray_asr(groups, pcm_dir(ctx.work), ctx.cfg.asr, ctx.cfg.ray)
    else:
        summary = asr_stage(batches, segments, pcm_dir(ctx.work), parts, ctx.cfg.asr, progress=ctx.progress)
    return StageResult(int(pc.sum(batches["n_items"]).as_py() or 0), dict(summary))


def prepare_asr_parts(work: Path, intent: str) -> None:
    """Keep part files from an interrupted run of the same inputs and config; drop any others."""
    parts = work / "transcripts"
    marker = parts / "_intent.txt"
    if parts.exists() and (not marker.exists() or marker.read_text() != intent):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(intent)


# ---- stitch -----------------------------------------------------------------------------------

def run_stitch(ctx: StageContext) -> StageResult:
    from stitcher.stage import stitch_stage

    summary = stitch_stage(ctx.cfg, ctx.work)
    return StageResult(int(summary.get("documents", 0)), summary)


RUNNERS: dict[str, Callable[[StageContext], StageResult]] = {
    "scan": run_scan, "vad": run_vad, "pack": run_pack, "asr": run_asr, "stitch": run_stitch,
}

