"""The six stages wired to work_dir: each reads its input tables, calls its stage package with its
own config section, and writes its output table. The runner decides which of them run.

Each function here takes a StageContext and returns a StageResult; none of them knows about the CLI
or about manifests. The stage packages themselves never see the run's Config or a work_dir file name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vadpack.asr.types import DeviceInfo
from vadpack.core.cache import SAMPLE_RATE, pcm_path
from vadpack.core.configtools import as_plain, result_hash, stable_hash
from vadpack.core.faults import fault_point
from vadpack.core.manifest import files_fingerprint
from vadpack.core.tables import BATCHES, RECORDINGS, VAD_RECORDINGS, VAD_SEGMENTS, read_table, to_table, write_table
from vadpack.core.types import RecordingRef
from vadpack.pipeline.config import Config
from vadpack.pipeline.engines.base import Engine, engine_for
from vadpack.pipeline.speaker_store import speakers_key, speakers_store
from vadpack.pipeline.store import asr_key, asr_store, next_batch_id, todo_spans
from vadpack.pipeline.types import (
    AsrStageSummary,
    PackSummary,
    ScanSummary,
    SpeakersStageSummary,
    StageFigures,
    VadSummary,
)
from vadpack.pipeline.workdir import WorkDir
from vadpack.vad.types import VadOutcome

log = logging.getLogger("vadpack")

# speakers reads only vad's segments and the PCM cache: it runs before pack and asr, while the audio
# of new recordings is certainly in the cache, and a failing asr never holds it up.
STAGES = ("scan", "vad", "speakers", "pack", "asr", "stitch")
SPEAKERS_OFF = "off (speakers.enabled: false)"


@dataclass(frozen=True, slots=True)
class StageContext:
    """What a stage function gets: the run's config, the work_dir layout, and how to run.

    Attributes:
        force: redo the stage's work even where a cache says it stands (``--force``).
        engine: where vad and asr run; chosen once from ``cfg.engine`` (``engine_for``) unless given.
    """

    cfg: Config
    work: WorkDir
    progress: bool = True
    force: bool = False
    engine: Engine = field(default=None)  # type: ignore[assignment]  # filled in by __post_init__

    def __post_init__(self) -> None:
        if self.engine is None:
            object.__setattr__(self, "engine", engine_for(self.cfg, self.progress))


@dataclass(frozen=True, slots=True)
class StageResult:
    """What a stage function returns: its row count and its figures (and, from the runner, its time).

    Attributes:
        rows: the rows of the stage's table (recordings, segments, batches, ...).
        summary: the stage's figures.
        wall_s: seconds the stage took, set by the runner (0 until then).
    """

    rows: int
    summary: StageFigures
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        """The figures as the stage's manifest keeps them, the stage's wall time included."""
        return {**self.summary.as_dict(), "wall_s": self.wall_s}


def output_fingerprint(cfg: Config, stage: str) -> str:
    """A fingerprint of what ``stage`` wrote, which the stages after it depend on."""
    work = WorkDir(cfg.work_path)
    if stage == "asr":
        return asr_store(cfg.asr, work).fingerprint()
    if stage == "speakers":
        return speakers_store(cfg.speakers, work).fingerprint() if cfg.speakers.enabled else stable_hash("off")
    if stage == "stitch":
        from vadpack.stitcher.stage import output_files

        return files_fingerprint(output_files(cfg.output_path))
    outputs = {"scan": [work.recordings], "vad": [work.segments, work.vad_recordings], "pack": [work.batches]}
    return files_fingerprint(outputs[stage])


def stage_config_parts(cfg: Config, stage: str) -> dict[str, str]:
    """The hashes of what a stage's result depends on in the config, by name (speed-only keys left out).

    A stage is stale when any of them changed; the names say why (``model changed``).
    """
    if stage == "scan":
        return {"inputs": stable_hash([cfg.resolve_input(i) for i in cfg.inputs])}
    if stage == "vad":
        return {"vad": result_hash(cfg.vad)}
    if stage == "speakers":
        if not cfg.speakers.enabled:
            return {"speakers": SPEAKERS_OFF}
        key = speakers_key(cfg.speakers)
        return {"speakers model": stable_hash(key.model_id), "speakers settings": key.settings}
    if stage in ("pack", "asr"):
        key = asr_key(cfg.asr)
        parts = {"model": stable_hash(key.model_id), "asr settings": key.settings}
        if stage == "asr":
            return parts
        # pack packs what the store of this model lacks, with the budget as it resolves (not the
        # word "auto": another GPU repacks, writing the number auto gives changes nothing).
        packer = {k: v for k, v in as_plain(cfg.packer).items() if k not in ("budget_s", "memory_fraction")}
        return {**parts, "packer": stable_hash(packer),
                "budget": stable_hash(budget_basis(cfg, device_info(cfg.asr.device)))}
    return {"stitch": result_hash(cfg.stitch), "output_dir": stable_hash(str(cfg.output_path)),
            "model": stable_hash(cfg.asr.model)}


# ---- scan -------------------------------------------------------------------------------------

def run_scan(ctx: StageContext) -> StageResult:
    from vadpack.scan.stage import known_content_ids, list_inputs, scan, skipped_note

    listing = list_inputs(ctx.cfg.inputs, ctx.cfg.base_dir, ctx.cfg.not_inputs)
    for note in (*listing.errors, *listing.notes):  # errors too: a caller may skip the preflight
        log.warning(note)
    if listing.skipped:
        log.info(skipped_note(listing.skipped))
    previous = None if ctx.force or not ctx.work.recordings.exists() else read_table(ctx.work.recordings)
    table = scan(list(listing.paths), known_content_ids(previous))
    write_table(table, ctx.work.recordings)
    failed = pc.sum(pc.equal(table["status"], "failed")).as_py() or 0
    seconds = pc.sum(table["duration_s"]).as_py() or 0.0
    return StageResult(table.num_rows, ScanSummary(files=table.num_rows, failed=failed, audio_h=seconds / 3600,
                                                   skipped=len(listing.skipped)))


# ---- vad --------------------------------------------------------------------------------------

def run_vad(ctx: StageContext) -> StageResult:
    refs = recording_refs(read_table(ctx.work.recordings, RECORDINGS))
    t0 = time.perf_counter()
    content = {r.recording_id: r.content_id for r in refs}
    seg_rows, rec_rows = vad_rows(vad_outcomes(ctx, refs), ctx.cfg.vad.backend, content)
    wall = time.perf_counter() - t0
    write_table(to_table(seg_rows, VAD_SEGMENTS), ctx.work.segments)
    write_table(to_table(rec_rows, VAD_RECORDINGS), ctx.work.vad_recordings)
    audio_s = sum(r["n_samples"] for r in rec_rows) / SAMPLE_RATE
    failed = sum(r["status"] == "failed" for r in rec_rows)
    return StageResult(len(seg_rows), VadSummary(segments=len(seg_rows), failed=failed, audio_h=audio_s / 3600,
                                                 xrt=audio_s / max(wall, 1e-9)))


def vad_outcomes(ctx: StageContext, refs: list[RecordingRef]) -> Iterator[VadOutcome]:
    """One VadOutcome per recording, from the run's engine."""
    cache = ctx.work.pcm
    cache.mkdir(parents=True, exist_ok=True)
    return ctx.engine.vad_outcomes(refs, cache, ctx.cfg.vad, ctx.force)


def recording_refs(recordings: pa.Table) -> list[RecordingRef]:
    """The recordings the scan stage accepted."""
    return [RecordingRef(r["recording_id"], r["path"], r["content_id"]) for r in recordings.to_pylist()
            if r["status"] == "ok"]


def vad_rows(outcomes: Iterable[VadOutcome], backend: str,
             content: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Rows of the segments and vad_recordings tables, sorted, whatever order outcomes came in."""
    seg_rows, rec_rows = [], []
    for out in outcomes:
        rec_rows.append({"recording_id": out.recording_id, "n_samples": out.n_samples,
                         "n_segments": len(out.segments), "speech_samples": sum(s.n_samples for s in out.segments),
                         "status": "failed" if out.error else "ok", "error": out.error, "warning": out.warning})
        seg_rows += [{"recording_id": s.recording_id, "segment_index": s.segment_index,
                      "start_sample": s.start_sample, "end_sample": s.end_sample, "backend": backend,
                      "content_id": content[s.recording_id]}
                     for s in out.segments]
    seg_rows.sort(key=lambda r: (r["recording_id"], r["segment_index"]))
    rec_rows.sort(key=lambda r: r["recording_id"])
    return seg_rows, rec_rows


# ---- pack -------------------------------------------------------------------------------------

def run_pack(ctx: StageContext) -> StageResult:
    """Pack the spans that have no result in the store yet (all of them on a first run)."""
    from vadpack.packer.stage import pack_segments

    segments = read_table(ctx.work.segments, VAD_SEGMENTS)
    store = asr_store(ctx.cfg.asr, ctx.work).working()  # a forced rerun's own folder while it lasts
    todo = todo_spans(segments, store)
    budget_s = pack_budget_s(ctx.cfg, measure=todo.num_rows > 0)  # nothing to pack: no GPU probe
    result = pack_segments(todo, ctx.cfg.packer, budget_s=budget_s, first_batch_id=next_batch_id(store))
    for w in result.warnings:
        log.warning(w)
    table = result.batches.cast(BATCHES)
    write_table(table, ctx.work.batches)
    n_todo = segments.select(["content_id", "start_sample", "end_sample"]).join(
        todo, keys=["content_id", "start_sample", "end_sample"], join_type="inner").num_rows if todo.num_rows else 0
    log.info("pack: %d of %d segments need decoding (%d reused from the store), %d batches", n_todo,
             segments.num_rows, segments.num_rows - n_todo, table.num_rows)
    return StageResult(table.num_rows, PackSummary(
        batches=table.num_rows, budget_s=budget_s,
        budget_basis=budget_basis(ctx.cfg, device_info(ctx.cfg.asr.device)),
        segments_to_decode=n_todo, segments_in_store=segments.num_rows - n_todo,
        padding_efficiency=result.stats.efficiency))


def device_info(spec: str) -> DeviceInfo:
    """The asr device, described without loading a model (``asr.stage.device_info``). The CPU is known
    without importing torch (``cpu``, or ``auto`` where no GPU can be: ``core.device.no_gpu_here``), so
    a run with nothing to do checks the pack stage's budget without it."""
    from vadpack.core.device import no_gpu_here

    if spec == "cpu" or (spec == "auto" and no_gpu_here()):
        return DeviceInfo("cpu", "cpu")
    from vadpack.asr.stage import device_info as describe

    return describe(spec)


def budget_basis(cfg: Config, device: DeviceInfo) -> str:
    """What the packing budget resolves from, known without loading a model.

    A number is itself. ``auto`` is the CPU budget on the CPU; on CUDA it is measured, so it depends
    on the device (name and memory), the model, the dtype and the memory fraction.
    """
    from vadpack.packer.stage import needs_measurement, resolve_budget_s

    if not needs_measurement(cfg.packer, device.kind):
        return f"{resolve_budget_s(cfg.packer, device.kind):g}"
    return stable_hash({"device": device.name, "total_bytes": device.total_bytes, "model": cfg.asr.model,
                        "dtype": cfg.asr.dtype, "memory_fraction": cfg.packer.memory_fraction})


def pack_budget_s(cfg: Config, measure: bool = True) -> float:
    """The padded-seconds budget to pack with: asr measures on CUDA, the packer's rule decides.

    ``measure=False`` (nothing to pack) loads no model and looks at no device: ``auto`` gives the CPU budget.
    """
    from vadpack.packer.stage import is_auto, needs_measurement, resolve_budget_s

    kind = device_info(cfg.asr.device).kind if measure else "cpu"
    if not needs_measurement(cfg.packer, kind):
        budget = resolve_budget_s(cfg.packer, kind)
        if measure and is_auto(cfg.packer):
            log.info("packer.budget_s = auto: no CUDA device, using %.0f padded seconds", budget)
        return budget
    from vadpack.asr.stage import measure_memory

    probe = measure_memory(cfg.asr)
    budget = resolve_budget_s(cfg.packer, kind, probe.bytes_per_padded_s, probe.free_bytes)
    log.info("packer.budget_s = auto: %.0f padded seconds (%.0f MiB free on %s)", budget,
             probe.free_bytes / 2**20, probe.device_name)
    return budget


# ---- asr --------------------------------------------------------------------------------------

def run_asr(ctx: StageContext) -> StageResult:
    """Decode the packed spans into the store; the summary says what was decoded and what reused."""
    batches = read_table(ctx.work.batches, BATCHES)
    final = asr_store(ctx.cfg.asr, ctx.work)
    store = final.working()  # a forced rerun writes beside the old results, which stay until the swap
    parts_before = set(store.parts())
    ensure_audio(ctx, batches)
    decoding = ctx.engine.decode(batches, ctx.work.pcm, store, ctx.cfg.asr)
    # Counted in segments, as status, pack's log line and the run summary count them: a span that two
    # copies of a file share is two segments, decoded once.
    segments = read_table(ctx.work.segments, VAD_SEGMENTS)
    decoded = _segments_in(segments, sorted(set(store.parts()) - parts_before))
    final.finish_replacement()
    log.info("asr: %d segments decoded, %d reused from the store", decoded, segments.num_rows - decoded)
    return StageResult(segments.num_rows, AsrStageSummary(
        engine=ctx.engine.name, decoding=decoding, decoded_segments=decoded, decoded_audio_s=decoding.audio_s,
        reused_segments=segments.num_rows - decoded))


def _segments_in(segments: pa.Table, parts: list) -> int:
    """How many rows of ``segments`` have their span in the store part files ``parts``."""
    if not parts:
        return 0
    keys = ["content_id", "start_sample", "end_sample"]
    spans = pa.concat_tables([pq.read_table(p, columns=keys) for p in parts]).group_by(keys).aggregate([])
    return segments.select(keys).join(spans, keys=keys, join_type="inner").num_rows


def ensure_audio(ctx: StageContext, batches: pa.Table) -> None:
    """Bring back the PCM of recordings whose cache file was deleted (``vad.keep_pcm: false``)."""
    needed = set(pc.unique(pc.list_flatten(batches["content_ids"])).to_pylist()) if batches.num_rows else set()
    ensure_contents_audio(ctx, needed, "asr")


def ensure_contents_audio(ctx: StageContext, content_ids: set[str], stage: str) -> None:
    """Decode again the recordings of ``content_ids`` whose PCM cache file is gone."""
    from vadpack.vad.stage import ensure_pcm_many

    refs = {r.content_id: r for r in recording_refs(read_table(ctx.work.recordings, RECORDINGS))}
    gone = [refs[c] for c in sorted(content_ids) if c in refs and not pcm_path(ctx.work.pcm, c).exists()]
    if gone:
        log.info("%s: decoding %d recordings again (their PCM was dropped: vad.keep_pcm)", stage, len(gone))
    for content_id, error in ensure_pcm_many(gone, ctx.work.pcm, ctx.cfg.vad.n_workers).items():
        log.warning("%s: cannot decode %s again (%s); it will fail there", stage, refs[content_id].path, error)


# ---- speakers ---------------------------------------------------------------------------------

def run_speakers(ctx: StageContext) -> StageResult:
    """Label the recordings whose content and segments have no labels in the store yet.

    Off (``speakers.enabled: false``) it does nothing. Each group of recordings the stage finishes
    is a part file of the store, so an interrupted run keeps what it labelled.
    """
    if not ctx.cfg.speakers.enabled:
        return StageResult(0, SpeakersStageSummary(enabled=False))
    from vadpack.pipeline.speaker_store import segments_digests, todo_segments, write_part

    segments = read_table(ctx.work.segments, VAD_SEGMENTS)
    final = speakers_store(ctx.cfg.speakers, ctx.work)
    store = final.working()  # a forced rerun writes beside the old labels, which stay until the swap
    todo = todo_segments(segments, store)
    n_contents = len(pc.unique(segments["content_id"]))
    summary = SpeakersStageSummary(enabled=True, reused_recordings=n_contents)
    if todo.num_rows:
        from vadpack.speakers.stage import SpeakerLabeller

        todo_ids = set(pc.unique(todo["content_id"]).to_pylist())
        ensure_contents_audio(ctx, todo_ids, "speakers")
        labeller = SpeakerLabeller(ctx.cfg.speakers, ctx.work.pcm)
        digests = segments_digests(todo)
        for results in labeller.run(todo, ctx.progress):
            write_part(store, results, digests)
            fault_point("speakers.part_written")
        summary = SpeakersStageSummary(enabled=True, labelled_recordings=len(todo_ids),
                                       reused_recordings=n_contents - len(todo_ids), labelling=labeller.figures())
    final.finish_replacement()
    log.info("speakers: %d recordings labelled, %d from the store", summary.labelled_recordings,
             summary.reused_recordings)
    return StageResult(summary.labelled_recordings, summary)


# ---- stitch -----------------------------------------------------------------------------------

def run_stitch(ctx: StageContext) -> StageResult:
    from vadpack.pipeline.stitch_source import StoreSource
    from vadpack.stitcher.stage import stitch_stage
    from vadpack.stitcher.types import StitchInputs

    speakers = speakers_store(ctx.cfg.speakers, ctx.work) if ctx.cfg.speakers.enabled else None
    inputs = StitchInputs(
        recordings=read_table(ctx.work.recordings, RECORDINGS),
        vad_recordings=read_table(ctx.work.vad_recordings, VAD_RECORDINGS),
        segments=read_table(ctx.work.segments, VAD_SEGMENTS),
        source=StoreSource(asr_store(ctx.cfg.asr, ctx.work), speakers, ctx.work.root / "stitch"),
        export_roots=tuple(export_roots(ctx.cfg)),
    )
    summary = stitch_stage(inputs, ctx.cfg.stitch, ctx.cfg.output_path, ctx.cfg.asr.model, stable_hash(ctx.cfg))
    return StageResult(summary.documents, summary)


def export_roots(cfg: Config) -> list[str]:
    """The input folders (a glob's folder part) the exports mirror; files and list files name none."""
    roots = []
    for spec in cfg.inputs:
        path = str(cfg.resolve_input(spec))
        head = path.split("*")[0].split("?")[0].split("[")[0]
        folder = head if head != path else path
        if Path(folder).is_dir():
            roots.append(folder)
        elif head != path:
            roots.append(str(Path(head).parent))
    return roots


RUNNERS: dict[str, Callable[[StageContext], StageResult]] = {
    "scan": run_scan, "vad": run_vad, "speakers": run_speakers, "pack": run_pack, "asr": run_asr,
    "stitch": run_stitch,
}
