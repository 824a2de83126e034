"""The stage runner: decides which stages are up to date, runs the others, and writes manifests.

Every stage artifact records the hash of its config section and a fingerprint of its inputs (the
output fingerprints of the stages it reads, or the input files' size and mtime for scan). A stage
runs when either differs from what it was computed from. Because fingerprints are content hashes,
rerunning an upstream stage that produces the same table leaves the stages after it up to date.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from core.atomic import write_text_atomic
from core.manifest import combine, new_manifest, read_manifest, write_manifest
from pipeline.config import Config, config_to_yaml
from pipeline.stages import (
    RUNNERS,
    STAGES,
    StageContext,
    StageResult,
    prepare_asr_parts,
    stage_config_hash,
    stage_outputs,
)
from pipeline.workdir import WorkDir

log = logging.getLogger("vadpack")

UPSTREAM: dict[str, tuple[str, ...]] = {
    "scan": (), "vad": ("scan",), "pack": ("vad",), "asr": ("pack", "vad"), "stitch": ("scan", "vad", "asr"),
}


@dataclass(frozen=True, slots=True)
class StageState:
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

    # ---- what is up to date -------------------------------------------------------------------

    def input_fingerprint(self, stage: str) -> str | None:
        """The fingerprint of what ``stage`` reads now; None when an upstream stage has not run."""
        if stage == "scan":
            from pipeline.scan import fingerprint_inputs, list_inputs

            paths, _ = list_inputs(self.cfg)
            return combine(*(f"{p}:{s}:{m}" for p, s, m in fingerprint_inputs(paths)))
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
            return StageState(stage, "missing", None)
        if m.config_hash != stage_config_hash(self.cfg, stage):
            return StageState(stage, "stale", m.rows, "config changed")
        if m.input_fingerprint != self.input_fingerprint(stage):
            return StageState(stage, "stale", m.rows, "inputs changed")
        return StageState(stage, "done", m.rows)

    def status(self) -> list[StageState]:
        """Each stage's state; a stage after a stage that is not done is stale (its inputs will change)."""
        out: list[StageState] = []
        blocked = False
        for stage in STAGES:
            st = self.state(stage)
            if blocked and st.state == "done":
                st = StageState(stage, "stale", st.rows, "an earlier stage is not done")
            blocked = blocked or st.state != "done"
            out.append(st)
        return out

    # ---- running ------------------------------------------------------------------------------

    def run(self, only: str | None = None, start: str | None = None) -> dict[str, StageResult]:
        """Run the stages that are not up to date.

        Args:
            only: run just this stage, from the saved artifacts of the stages before it.
            start: force this stage and every stage after it to rerun.
        """
        self.work.root.mkdir(parents=True, exist_ok=True)
        sweep_temp_files([self.work.root, self.cfg.output_path])
        write_text_atomic(self.work.resolved_config, config_to_yaml(self.cfg))
        results: dict[str, StageResult] = {}
        forced = False
        for stage in STAGES:
            if only is not None and stage != only:
                continue
            forced = forced or stage == start or stage == only
            if not forced and self.state(stage).state == "done":
                log.info("%s: up to date, skipped", stage)
                continue
            results[stage] = self.run_stage(stage)
        return results

    def run_stage(self, stage: str) -> StageResult:
        input_fp = self.input_fingerprint(stage)
        if input_fp is None:
            missing = [u for u in UPSTREAM[stage] if read_manifest(self.work.manifest(u)) is None]
            raise StageOrderError(f"cannot run {stage}: stage {missing[0]} has not run yet "
                                  f"(run `vadpack run CONFIG` or `--stage {missing[0]}` first)")
        config_hash = stage_config_hash(self.cfg, stage)
        self.work.manifest(stage).unlink(missing_ok=True)  # while a stage runs, it is not complete
        if stage == "asr":
            prepare_asr_parts(self.work, combine(config_hash, input_fp))
        log.info("%s: running", stage)
        t0 = time.perf_counter()
        result = RUNNERS[stage](StageContext(self.cfg, self.work, self.progress))
        result.summary["wall_s"] = time.perf_counter() - t0
        log.info("%s: done in %.1f s, %d rows", stage, result.summary["wall_s"], result.rows)
        write_manifest(self.work.manifest(stage), new_manifest(stage, config_hash, input_fp,
                                                               stage_outputs(self.cfg, stage), result.rows,
                                                               result.summary))
        return result


def sweep_temp_files(folders: list[Path]) -> int:
    """Remove temporary files an interrupted run left behind (complete files are never temporary)."""
    import shutil

    n = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in list(folder.rglob(".*.tmp-*")) + list(folder.rglob(".*.staging")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            n += 1
    if n:
        log.info("removed %d temporary files left by an interrupted run", n)
    return n


class StageOrderError(RuntimeError):
    """A stage was asked to run before the stages it reads from."""
