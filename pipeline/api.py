"""The public Python API behind ``import vadpack`` (and behind the CLI, which only parses arguments).

    import vadpack
    cfg = vadpack.load_config("configs/demo.yaml", ["packer.budget_s=60"])
    report = vadpack.run(cfg)
    tables = vadpack.read_tables(cfg.output_path)
    tables.segments.head()
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.config import Config
from vadpack.pipeline.config import load_config as _load_config

log = logging.getLogger("vadpack")


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one ``run`` did.

    Attributes:
        stages_run: the stages that ran (the others were up to date).
        summary: the run's figures (files, audio hours, segments, batches, speed, failures, ...),
            as ``vadpack run`` prints them.
    """

    stages_run: tuple[str, ...]
    summary: dict[str, Any]

    @property
    def failed(self) -> int:
        """Inputs, segments and speaker labels that did not make it (see ``failures.parquet``)."""
        return sum(int(self.summary.get(key, 0)) for key in ("failed_inputs", "failed_segments", "failed_speakers"))


@dataclass(frozen=True, slots=True)
class Tables:
    """The public tables of one output folder, as pandas DataFrames (or pyarrow Tables).

    ``turns`` and ``speakers`` come from the speakers stage; without it, turns holds one turn per
    segment (speaker null) and speakers is empty.
    """

    documents: Any
    segments: Any
    tokens: Any
    words: Any
    failures: Any
    turns: Any
    speakers: Any


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config and apply ``section.key=value`` overrides.

    Raises:
        ValueError: on unknown keys, bad values or malformed overrides (the message names the key).
        FileNotFoundError: when the config file does not exist.
    """
    return _load_config(path, overrides)


def run(config: Config | str | Path, stage: str | None = None, from_stage: str | None = None,
        overrides: list[str] | tuple[str, ...] = (), progress: bool = False,
        force: tuple[str, ...] | list[str] = ()) -> RunReport:
    """Run the stages that are not up to date (or the ones asked for).

    Args:
        config: a loaded Config, or the path of a YAML config.
        stage: run only this stage, from the saved artifacts of the stages before it.
        from_stage: rerun this stage and every stage after it.
        overrides: ``section.key=value`` overrides, applied when ``config`` is a path.
        progress: show progress bars on a terminal.
        force: stages whose work is redone even when it is up to date (``asr``: every segment is
            decoded again; ``speakers``: every recording labelled again; ``vad``: every file decoded
            again; ``scan``: every file hashed again).

    Returns:
        The stages that ran and the run's figures.

    Raises:
        PreflightError: (a ``ValueError``) the config cannot run as it stands: a missing input, an
            unwritable folder, an incomplete model folder, a missing device or extra. Checked before
            any stage runs; one line per problem.
    """
    from vadpack.pipeline.preflight import preflight, stages_to_run
    from vadpack.pipeline.runner import Runner
    from vadpack.pipeline.summary import run_summary

    cfg = _as_config(config, overrides)
    for warning in preflight(cfg, stages_to_run(stage, from_stage)):
        log.warning(warning)
    t0 = time.perf_counter()
    results = Runner(cfg, progress=progress).run(only=stage, start=from_stage, force=frozenset(force))
    return RunReport(tuple(results), run_summary(cfg, results, time.perf_counter() - t0))


def status(config: Config | str | Path, overrides: list[str] | tuple[str, ...] = ()) -> list:
    """Each stage's state (``done``, ``stale`` with the reason, or ``missing``) and its row count."""
    from vadpack.pipeline.runner import Runner

    return Runner(_as_config(config, overrides), progress=False).status()


def prune(config: Config | str | Path, dry_run: bool = False, overrides: list[str] | tuple[str, ...] = ()):
    """Remove cache files, store entries and exports that no recording of the archive uses any more.

    Returns:
        A ``PruneReport``: files and bytes removed (or that would be, with ``dry_run``) per kind.
    """
    from vadpack.pipeline.housekeeping import prune as prune_work_dir
    from vadpack.pipeline.lock import WorkDirLock
    from vadpack.pipeline.workdir import WorkDir

    cfg = _as_config(config, overrides)
    work = WorkDir(cfg.work_path)
    if not work.root.is_dir():
        from vadpack.pipeline.housekeeping import PruneReport

        return PruneReport()
    with WorkDirLock(work.lock):
        return prune_work_dir(cfg, dry_run)


def read_tables(output_dir: str | Path, as_arrow: bool = False) -> Tables:
    """Read the public tables of an output folder (a file or a folder of parts each).

    Args:
        output_dir: the run's ``output_dir`` (``<work_dir>/output`` by default).
        as_arrow: return pyarrow Tables instead of pandas DataFrames.

    Raises:
        FileNotFoundError: a table is missing (the run has not finished its stitch stage).
    """
    from vadpack.core.tables import read_table

    out = Path(output_dir)
    tables = {}
    for name in OUTPUT_SCHEMAS:
        path = out / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run `vadpack run CONFIG` to write the tables")
        table = read_table(path, OUTPUT_SCHEMAS[name])
        tables[name] = table if as_arrow else table.to_pandas()
    return Tables(**tables)


def _as_config(config: Config | str | Path, overrides: list[str] | tuple[str, ...]) -> Config:
    if isinstance(config, Config):
        if overrides:
            raise ValueError("overrides apply to a config file; pass the path, or load_config(path, overrides)")
        return config
    return _load_config(config, overrides)
