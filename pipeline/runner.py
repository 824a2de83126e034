"""The stage runner: decides which stages are up to date, runs the others, and writes manifests.

Every stage artifact records the hashes of the config it depends on (by name, so a stale stage can
say why) and a fingerprint of its inputs (the output fingerprints of the stages it reads, or the
input files' size and mtime for scan). A stage runs when either differs from what it was computed
from. Because fingerprints are content hashes, rerunning an upstream stage that produces the same
table leaves the stages after it up to date.

asr results live in a content-keyed store, so "rerunning asr" costs only the spans the store lacks;
``force`` is how a user asks for the work itself to be redone.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from functools import cached_property

from vadpack.core.atomic import write_text_atomic
from vadpack.core.faults import fault_point
from vadpack.core.manifest import Manifest, combine, combine_parts, new_manifest, read_manifest, write_manifest
from vadpack.pipeline.config import Config, config_to_yaml
from vadpack.pipeline.engines.base import Engine, engine_for
from vadpack.pipeline.lock import WorkDirLock
from vadpack.pipeline.speaker_store import speakers_store
from vadpack.pipeline.stages import (
    RUNNERS,
    SPEAKERS_OFF,
    STAGES,
    StageContext,
    StageResult,
    output_fingerprint,
    stage_config_parts,
)
from vadpack.pipeline.store import asr_store
from vadpack.pipeline.workdir import WorkDir

log = logging.getLogger("vadpack")

UPSTREAM: dict[str, tuple[str, ...]] = {
    "scan": (), "vad": ("scan",), "speakers": ("vad",), "pack": ("vad",), "asr": ("pack",),
    "stitch": ("scan", "vad", "speakers", "asr"),
}


@dataclass(frozen=True, slots=True)
class StageState:
    """One stage's state: ``done``, ``stale`` (with the reason) or ``missing``, and its row count."""

    stage: str
    state: str  # done | stale | missing
    rows: int | None
    reason: str = ""


class Runner:
    """Runs the pipeline for one config."""

    def __init__(self, cfg: Config, progress: bool = True) -> None:
        self.cfg = cfg
        self.work = WorkDir(cfg.work_path)
        self.progress = progress

    @cached_property
    def engine(self) -> Engine:
        """Where vad and asr run: chosen once, when a stage first runs (a run with nothing to do, or a
        status, never imports Ray), and every stage runs on it."""
        return engine_for(self.cfg, self.progress)

    # ---- what is up to date -------------------------------------------------------------------

    def input_fingerprint(self, stage: str) -> str | None:
        """The fingerprint of what ``stage`` reads now; None when an upstream stage has not run."""
        if stage == "scan":
            from vadpack.scan.stage import fingerprint_inputs, list_inputs

            paths = list_inputs(self.cfg.inputs, self.cfg.base_dir, self.cfg.not_inputs).paths
            return combine(*(f"{p}:{s}:{m}" for p, s, m in fingerprint_inputs(list(paths))))
        fps = []
        for up in UPSTREAM[stage]:
            m = read_manifest(self.work.manifest(up))
            if m is None:
                return None
            fps.append(m.output_fingerprint)
        return combine(*fps)

    def state(self, stage: str) -> StageState:
        m = read_manifest(self.work.manifest(stage))
        if m is None:
            return StageState(stage, "missing", None, self._pending_note(stage))
        parts = stage_config_parts(self.cfg, stage)
        if m.config_hash != combine_parts(parts):
            return StageState(stage, "stale", m.rows, _what_changed(m, parts))
        if m.input_fingerprint != self.input_fingerprint(stage):
            return StageState(stage, "stale", m.rows, "inputs changed")
        # A stage that is switched off is done (it costs nothing); the reason says it is off.
        if parts.get("speakers") == SPEAKERS_OFF:
            return StageState(stage, "done", m.rows, SPEAKERS_OFF)
        return StageState(stage, "done", m.rows, _done_note(m))

    def _pending_note(self, stage: str) -> str:
        """Why a stage's manifest is missing when a forced rerun left its work unfinished."""
        if stage in ("pack", "asr") and asr_store(self.cfg.asr, self.work).replacement_pending():
            return "a forced asr rerun is unfinished; the next run goes on with it (the old results stay until then)"
        if stage == "speakers" and self.cfg.speakers.enabled and \
                speakers_store(self.cfg.speakers, self.work).replacement_pending():
            return "a forced speakers rerun is unfinished; the next run goes on with it"
        return ""

    def status(self) -> list[StageState]:
        """Each stage's state; a stage that reads from a stage that is not done is stale (its inputs
        will change). Only what a stage reads counts: a stale speakers stage leaves pack and asr done."""
        out: list[StageState] = []
        not_done: set[str] = set()
        for stage in STAGES:
            st = self.state(stage)
            if st.state == "done" and not_done & set(UPSTREAM[stage]):
                st = StageState(stage, "stale", st.rows, "an earlier stage is not done")
            if st.state != "done":
                not_done.add(stage)
            out.append(st)
        return out

    # ---- running ------------------------------------------------------------------------------

    def run(self, only: str | None = None, start: str | None = None,
            force: frozenset[str] = frozenset()) -> dict[str, StageResult]:
        """Run the stages that are not up to date, holding the work_dir lock.

        Args:
            only: run just this stage, from the saved artifacts of the stages before it.
            start: rerun this stage and every stage after it.
            force: stages whose work is redone even where caches and the store say it stands (for
                asr: every segment is packed and decoded again into a fresh folder that replaces the
                stored results once complete; they are never deleted first).
        """
        self.work.root.mkdir(parents=True, exist_ok=True)
        with WorkDirLock(self.work.lock):
            sweep_temp_files([self.work.root, self.cfg.output_path])
            write_text_atomic(self.work.resolved_config, config_to_yaml(self.cfg))
            self._recover_replacements()
            if "asr" in force:
                self._replace_asr_results()
            if "speakers" in force and self.cfg.speakers.enabled:
                self._replace_speaker_labels()
            results: dict[str, StageResult] = {}
            rerun = False
            for stage in STAGES:
                if only is not None and stage != only and not (stage == "pack" and "asr" in force):
                    continue
                rerun = rerun or stage == start or stage == only or stage in force
                if not rerun and self.state(stage).state == "done":
                    log.info("%s: up to date, skipped", stage)
                    continue
                results[stage] = self.run_stage(stage, force=stage in force)
            if results:
                from vadpack.pipeline.housekeeping import drop_transcribed_pcm, drops_pcm

                if drops_pcm(self.cfg):
                    drop_transcribed_pcm(self.cfg)
        return results

    def run_stage(self, stage: str, force: bool = False) -> StageResult:
        input_fp = self.input_fingerprint(stage)
        if input_fp is None:
            missing = [u for u in UPSTREAM[stage] if read_manifest(self.work.manifest(u)) is None]
            raise StageOrderError(f"cannot run {stage}: stage {missing[0]} has not run yet "
                                  f"(run `vadpack run CONFIG` or `--stage {missing[0]}` first)")
        parts = stage_config_parts(self.cfg, stage)
        self.work.manifest(stage).unlink(missing_ok=True)  # while a stage runs, it is not complete
        log.info("%s: running%s", stage, " (forced)" if force else "")
        t0 = time.perf_counter()
        fault_point(f"{stage}.started")
        try:
            result = RUNNERS[stage](StageContext(self.cfg, self.work, self.progress, force, self.engine))
        except BaseException:
            if stage == "stitch":  # no half-written table left in the folder people read
                sweep_temp_files([self.cfg.output_path])
            raise
        result = replace(result, wall_s=time.perf_counter() - t0)
        log.info("%s: done in %.1f s, %d rows", stage, result.wall_s, result.rows)
        write_manifest(self.work.manifest(stage), new_manifest(stage, parts, input_fp,
                                                               output_fingerprint(self.cfg, stage), result.rows,
                                                               result.as_dict()))
        fault_point(f"{stage}.done")
        return result

    def _recover_replacements(self) -> None:
        """Complete a store swap that a killed forced run left half done."""
        asr_store(self.cfg.asr, self.work).recover_replacement()
        if self.cfg.speakers.enabled:
            speakers_store(self.cfg.speakers, self.work).recover_replacement()

    def _replace_asr_results(self) -> None:
        """``--force asr``: decode every segment again into a fresh folder; the stored results stay, and
        stitch reads them, until the new ones replace them (``PartStore.finish_replacement``)."""
        store = asr_store(self.cfg.asr, self.work)
        store.begin_replacement()
        for stage in ("pack", "asr", "stitch"):
            self.work.manifest(stage).unlink(missing_ok=True)
        log.info("asr: forced; every segment is decoded again, and the stored results of this model and "
                 "settings (%s) stay until the new ones replace them", store.folder.name)

    def _replace_speaker_labels(self) -> None:
        """``--force speakers``: label every recording again; the stored labels stay until replaced."""
        store = speakers_store(self.cfg.speakers, self.work)
        store.begin_replacement()
        for stage in ("speakers", "stitch"):
            self.work.manifest(stage).unlink(missing_ok=True)
        log.info("speakers: forced; every recording is labelled again, and the stored labels (%s) stay until "
                 "the new ones replace them", store.folder.name)


def _done_note(m: Manifest) -> str:
    """What a done asr stage's rows were made of: decoded then, or reused from the store."""
    if m.stage == "asr" and "decoded_segments" in m.summary:
        return (f"{m.summary['decoded_segments']} decoded, {m.summary.get('reused_segments', 0)} reused "
                "from the store")
    return ""


def _what_changed(m: Manifest, parts: dict[str, str]) -> str:
    """``model changed``, ``asr settings changed``, ... from the named hashes a manifest kept."""
    changed = [name for name, value in parts.items() if m.config_parts.get(name) != value]
    if not m.config_parts or not changed:
        return "config changed"
    return ", ".join(f"{name} changed" for name in changed)


def _temp_files(folder: str) -> list[str]:
    """The temporary files and folders (``.NAME.tmp-*``, ``.NAME.staging``) under ``folder``, in one walk
    with ``os.scandir`` (a large archive's cache and exports are tens of thousands of files; links are
    not followed)."""
    found: list[str] = []
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return found
    for e in entries:
        if e.name.startswith(".") and (".tmp-" in e.name[1:] or e.name[1:].endswith(".staging")):
            found.append(e.path)
        elif e.is_dir(follow_symlinks=False):
            found += _temp_files(e.path)
    return found


def sweep_temp_files(folders: list) -> int:
    """Remove temporary files an interrupted run left behind (complete files are never temporary)."""
    n = 0
    for folder in folders:
        for p in _temp_files(str(folder)):
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) and not os.path.islink(p) else \
                os.unlink(p)
            n += 1
    if n:
        log.info("removed %d temporary files left by an interrupted run", n)
    return n


class StageOrderError(RuntimeError):
    """A stage was asked to run before the stages it reads from."""
