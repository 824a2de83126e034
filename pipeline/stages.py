"""The five stages wired to work_dir: each reads its input tables, calls its stage package with its
own config section, and writes its output table. The runner decides which of them run.

Each function here takes a StageContext and returns a StageResult; none of them knows about the CLI
or about manifests. The stage packages themselves never see the run's Config or a work_dir file name.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow.compute as pc

from core.cache import SAMPLE_RATE
from core.configtools import as_plain, result_hash, stable_hash
from core.tables import (
    BATCHES,
    RECORDINGS,
    TRANSCRIPTS,
    VAD_RECORDINGS,
    VAD_SEGMENTS,
    read_table,
    to_table,
    write_table,
)
from core.types import RecordingRef
from pipeline.config import Config
from pipeline.workdir import WorkDir
from vad.types import VadOutcome

if TYPE_CHECKING:
    from asr.types import DeviceInfo

log = logging.getLogger("vadpack")

STAGES = ("scan", "vad", "pack", "asr", "stitch")


@dataclass(frozen=True, slots=True)
class StageContext:
    cfg: Config
    work: WorkDir
    progress: bool = True


@dataclass(frozen=True, slots=True)
class StageResult:
    rows: int
    summary: dict = field(default_factory=dict)


def stage_outputs(cfg: Config, stage: str) -> list:
    """The artifacts each stage writes (what its output fingerprint covers)."""
    work = WorkDir(cfg.work_path)
    if stage == "stitch":
        from stitcher.stage import output_files

        return output_files(cfg.output_path)
    return {
        "scan": [work.recordings],
        "vad": [work.segments, work.vad_recordings],
        "pack": [work.batches],
        "asr": [work.transcripts],
    }[stage]


def stage_config_hash(cfg: Config, stage: str) -> str:
    """The hash of the config a stage's result depends on (speed-only keys left out)."""
    if stage == "scan":
        return stable_hash({"inputs": [cfg.resolve_input(i) for i in cfg.inputs]})
    if stage == "vad":
        return result_hash(cfg.vad)
    if stage == "pack":
        # The budget as it resolves, not the word "auto": another GPU or device repacks, while
        # writing the number that auto gives changes nothing.
        packer = {k: v for k, v in as_plain(cfg.packer).items() if k not in ("budget_s", "memory_fraction")}
        return stable_hash({"packer": packer, "budget": budget_basis(cfg, device_info(cfg.asr.device))})
    if stage == "asr":
        return result_hash(cfg.asr)
    return stable_hash({"stitch": result_hash(cfg.stitch), "output_dir": str(cfg.output_path),
                        "model": cfg.asr.model})


# ---- scan -------------------------------------------------------------------------------------

def run_scan(ctx: StageContext) -> StageResult:
    from pipeline.scan import list_inputs, scan

    paths, notes = list_inputs(ctx.cfg)
    for note in notes:
        log.warning(note)
    table = scan(paths)
    write_table(table, ctx.work.recordings)
    failed = pc.sum(pc.equal(table["status"], "failed")).as_py() or 0
    seconds = pc.sum(table["duration_s"]).as_py() or 0.0
    return StageResult(table.num_rows, {"files": table.num_rows, "failed": failed, "audio_h": seconds / 3600})


# ---- vad --------------------------------------------------------------------------------------

def run_vad(ctx: StageContext) -> StageResult:
    recs = read_table(ctx.work.recordings, RECORDINGS).to_pylist()
    refs = [RecordingRef(r["recording_id"], r["path"]) for r in recs if r["status"] == "ok"]
    t0 = time.perf_counter()
    seg_rows, rec_rows = vad_rows(vad_outcomes(ctx, refs), ctx.cfg.vad.backend)
    wall = time.perf_counter() - t0
    write_table(to_table(seg_rows, VAD_SEGMENTS), ctx.work.segments)
    write_table(to_table(rec_rows, VAD_RECORDINGS), ctx.work.vad_recordings)
    audio_s = sum(r["n_samples"] for r in rec_rows) / SAMPLE_RATE
    failed = sum(r["status"] == "failed" for r in rec_rows)
    return StageResult(len(seg_rows), {"segments": len(seg_rows), "failed": failed, "audio_h": audio_s / 3600,
                                       "xrt": audio_s / max(wall, 1e-9)})


def vad_outcomes(ctx: StageContext, refs: list[RecordingRef]) -> Iterator[VadOutcome]:
    """One VadOutcome per recording, from the configured engine."""
    cache = ctx.work.pcm
    cache.mkdir(parents=True, exist_ok=True)
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
        seg_rows += [{"recording_id": s.recording_id, "segment_index": s.segment_index,
                      "start_sample": s.start_sample, "end_sample": s.end_sample, "backend": backend}
                     for s in out.segments]
    seg_rows.sort(key=lambda r: (r["recording_id"], r["segment_index"]))
    rec_rows.sort(key=lambda r: r["recording_id"])
    return seg_rows, rec_rows


# ---- pack -------------------------------------------------------------------------------------

def run_pack(ctx: StageContext) -> StageResult:
    from packer.pack import pack_segments

    segments = read_table(ctx.work.segments, VAD_SEGMENTS)
    budget_s = resolve_budget_s(ctx.cfg)
    result = pack_segments(segments, ctx.cfg.packer, budget_s=budget_s)
    for w in result.warnings:
        log.warning(w)
    table = result.batches.cast(BATCHES)
    write_table(table, ctx.work.batches)
    real = pc.sum(table["real_frames"]).as_py() or 0
    padded = pc.sum(table["padded_frames"]).as_py() or 0
    return StageResult(table.num_rows, {"batches": table.num_rows, "budget_s": budget_s,
                                        "budget_basis": budget_basis(ctx.cfg, device_info(ctx.cfg.asr.device)),
                                        "padding_efficiency": real / padded if padded else 1.0})


def device_info(spec: str) -> DeviceInfo:
    """The asr device, described without loading a model (``asr.model.device_info``)."""
    from asr.model import device_info as describe

    return describe(spec)


def budget_basis(cfg: Config, device: DeviceInfo) -> str:
    """What the packing budget resolves from, known without loading a model.

    A number is itself. ``auto`` is the CPU budget on the CPU; on CUDA it is measured, so it depends
    on the device (name and memory), the model, the dtype and the memory fraction.
    """
    if cfg.packer.budget_s != "auto":
        return f"{float(cfg.packer.budget_s):g}"
    if device.kind != "cuda":
        from packer.budget import CPU_BUDGET_S

        return f"{CPU_BUDGET_S:g}"
    return stable_hash({"device": device.name, "total_bytes": device.total_bytes, "model": cfg.asr.model,
                        "dtype": cfg.asr.dtype, "memory_fraction": cfg.packer.memory_fraction})


def resolve_budget_s(cfg: Config) -> float:
    """The padded-seconds budget: asr measures on CUDA, the packer's rule decides."""
    from packer.budget import resolve_budget_s as packer_rule

    device = device_info(cfg.asr.device)
    if cfg.packer.budget_s != "auto" or device.kind != "cuda":
        budget = packer_rule(cfg.packer, device.kind)
    else:
        from asr.budget import measure_memory

        probe = measure_memory(cfg.asr)
        budget = packer_rule(cfg.packer, device.kind, probe.bytes_per_padded_s, probe.free_bytes)
        log.info("packer.budget_s = auto: %.0f padded seconds (%.0f MiB free on %s)", budget,
                 probe.free_bytes / 2**20, probe.device_name)
    if cfg.packer.budget_s == "auto" and device.kind != "cuda":
        log.info("packer.budget_s = auto: no CUDA device, using %.0f padded seconds", budget)
    return budget


# ---- asr --------------------------------------------------------------------------------------

def run_asr(ctx: StageContext) -> StageResult:
    from asr.stage import run_asr as asr_stage

    batches = read_table(ctx.work.batches, BATCHES)
    segments = read_table(ctx.work.segments, VAD_SEGMENTS)
    parts = ctx.work.transcripts
    if ctx.cfg.engine == "ray":
        from asr.stage import batch_plans, part_groups
        from pipeline.engines.ray_engine import ray_asr

        groups = part_groups(batch_plans(batches, segments), ctx.cfg.asr.batches_per_part, parts)
        summary = ray_asr(groups, ctx.work.pcm, ctx.cfg.asr, ctx.cfg.ray)
    else:
        summary = asr_stage(batches, segments, ctx.work.pcm, parts, ctx.cfg.asr, progress=ctx.progress)
    return StageResult(int(pc.sum(batches["n_items"]).as_py() or 0), dict(summary))


def prepare_asr_parts(work: WorkDir, intent: str) -> None:
    """Keep part files from an interrupted run of the same inputs and config; drop any others."""
    parts = work.transcripts
    marker = parts / "_intent.txt"
    if parts.exists() and (not marker.exists() or marker.read_text() != intent):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(intent)


# ---- stitch -----------------------------------------------------------------------------------

def run_stitch(ctx: StageContext) -> StageResult:
    from stitcher.stage import stitch_stage
    from stitcher.types import StitchInputs

    inputs = StitchInputs(
        recordings=read_table(ctx.work.recordings, RECORDINGS),
        vad_recordings=read_table(ctx.work.vad_recordings, VAD_RECORDINGS),
        segments=read_table(ctx.work.segments, VAD_SEGMENTS),
        transcripts=read_table(ctx.work.transcripts, TRANSCRIPTS),
    )
    summary = stitch_stage(inputs, ctx.cfg.stitch, ctx.cfg.output_path, ctx.cfg.asr.model, stable_hash(ctx.cfg))
    return StageResult(int(summary.get("documents", 0)), summary)


RUNNERS: dict[str, Callable[[StageContext], StageResult]] = {
    "scan": run_scan, "vad": run_vad, "pack": run_pack, "asr": run_asr, "stitch": run_stitch,
}
