"""The public Python API behind ``import vadpack`` (and behind the CLI, which only parses arguments).

    import vadpack
    cfg = vadpack.load_config("configs/demo.yaml", ["packer.budget_s=60"])
    report = vadpack.run(cfg)
    tables = vadpack.read_tables(cfg.output_path)
    tables.segments.head()

Every argument is checked where it enters: a stage name that is not one (``"asrr"``, ``"ASR"``), a
``force`` that is neither a stage, a list of stages nor ``True``, ``stage`` together with
``from_stage``, or overrides given as one string raise ``ValueError`` / ``TypeError`` naming the
argument, before any work.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

from vadpack.core.configtools import ConfigError
from vadpack.pipeline.config import Config, config_from_dict
from vadpack.pipeline.config import load_config as _load_config
from vadpack.pipeline.housekeeping import PruneReport
from vadpack.pipeline.preflight import PreflightError
from vadpack.pipeline.runner import Runner, StageOrderError, StageState
from vadpack.pipeline.summary import FailureRow, RunSummary

log = logging.getLogger("vadpack")

Stage: TypeAlias = Literal["scan", "vad", "speakers", "pack", "asr", "stitch"]
STAGES: tuple[Stage, ...] = get_args(Stage)
Overrides: TypeAlias = "Iterable[str] | Mapping[str, object]"  # ["packer.budget_s=60"] or {"packer.budget_s": 60}

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATEFMT = "%H:%M:%S"


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one ``run`` did.

    Attributes:
        stages_run: the stages that ran (the others were up to date).
        summary: the run's figures (files, audio hours, segments, batches, speed, failures, ...),
            as ``vadpack run`` prints them; see :class:`RunSummary` for each field.
    """

    stages_run: tuple[Stage, ...]
    summary: RunSummary

    @property
    def failed(self) -> int:
        """Inputs, segments and speaker labels that did not make it (see ``failures.parquet``)."""
        return self.summary.failed


@dataclass(frozen=True, slots=True)
class Tables:
    """The public tables of one output folder, as pandas DataFrames (or pyarrow Tables with
    ``as_arrow=True``); the README's "Output tables" section documents their columns.

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


def load_config(path: str | os.PathLike[str], overrides: Overrides = ()) -> Config:
    """Load a YAML config and apply overrides.

    Args:
        path: the YAML file; relative paths in it resolve against its folder.
        overrides: ``["section.key=value", ...]`` as on the command line (values read as YAML), or a
            mapping ``{"section.key": value}`` (values taken as they are).

    Raises:
        ValueError: on unknown keys, bad values or malformed overrides (the message names the key).
        TypeError: ``overrides`` is a single string, or not a list or mapping.
        FileNotFoundError: when the config file does not exist.
    """
    return _load_config(_check_path("path", path), _check_overrides(overrides))


def make_config(*, inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                work_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None,
                engine: Literal["local", "ray"] = "local", vad: Mapping[str, object] | None = None,
                packer: Mapping[str, object] | None = None, asr: Mapping[str, object] | None = None,
                speakers: Mapping[str, object] | None = None, stitch: Mapping[str, object] | None = None,
                ray: Mapping[str, object] | None = None) -> Config:
    """Build a Config in code, with the same checks as a YAML file.

    Relative paths resolve against the current directory. Sections take the keys of the YAML file's
    sections (``configs/default.yaml`` documents each), e.g. ``asr={"model": "runs/models/tiny",
    "device": "cpu"}``.

    Raises:
        ValueError: an unknown key or a bad value (the message names the key and what it allows).
        TypeError: a section that is not a mapping.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    data: dict[str, object] = {"inputs": [os.fspath(i) for i in inputs], "work_dir": os.fspath(work_dir),
                               "engine": engine}
    if output_dir is not None:
        data["output_dir"] = os.fspath(output_dir)
    sections = {"vad": vad, "packer": packer, "asr": asr, "speakers": speakers, "stitch": stitch, "ray": ray}
    for name, section in sections.items():
        if section is None:
            continue
        if not isinstance(section, Mapping):
            raise TypeError(f"{name} must be a mapping of that section's keys, e.g. {name}={{...}}; "
                            f"got {type(section).__name__}")
        data[name] = dict(section)
    return config_from_dict(data, base_dir=os.getcwd())


def run(config: Config | str | os.PathLike[str], stage: Stage | None = None, from_stage: Stage | None = None,
        overrides: Overrides = (), progress: bool = False,
        force: Stage | Iterable[Stage] | bool = (), log_to_stderr: bool = True) -> RunReport:
    """Run the stages that are not up to date (or the ones asked for).

    Args:
        config: a Config (:func:`load_config`, :func:`make_config`), or the path of a YAML config.
        stage: run only this stage, from the saved artifacts of the stages before it.
        from_stage: rerun this stage and every stage after it (not together with ``stage``).
        overrides: as in :func:`load_config`, applied when ``config`` is a path.
        progress: show progress bars on a terminal.
        force: redo work even where it is up to date: a stage, a list of stages, or ``True`` for the
            stages this run covers (``stage``, ``from_stage`` and after, or all). ``asr``: every
            segment is decoded again; ``speakers``: every recording labelled again; ``vad``: every
            file decoded again; ``scan``: every file hashed again. The old results stay until the new
            ones replace them.
        log_to_stderr: give the ``vadpack`` logger its own stderr handler for the run (vadpack's
            format, INFO), unless it already has a handler of yours; False leaves logging to you.

    Returns:
        The stages that ran and the run's figures.

    Raises:
        ValueError: a bad argument (the message names it and the choices).
        TypeError: an argument of the wrong type (``force=3``, ``overrides="k=v"``).
        PreflightError: (a ``ValueError``) the config cannot run as it stands: a missing input, an
            unwritable folder, an incomplete model folder, a missing device or extra. Checked before
            any stage runs; one line per problem.
        ConfigError: (a ``ValueError``) another run holds the work_dir's lock.
    """
    only, start = _check_stage("stage", stage), _check_stage("from_stage", from_stage)
    if only is not None and start is not None:
        raise ValueError(f"stage={only!r} and from_stage={start!r} were both given; pass stage to rerun one "
                         "stage, or from_stage to rerun a stage and all after it")
    forced = _check_force(force, only, start)
    overrides = _check_overrides(overrides)
    with vadpack_logging(log_to_stderr):
        cfg = _as_config(config, overrides)
        return _run(cfg, only, start, forced, progress)


def _run(cfg: Config, only: Stage | None, start: Stage | None, forced: frozenset[Stage],
         progress: bool) -> RunReport:
    from vadpack.pipeline.preflight import preflight, stages_to_run
    from vadpack.pipeline.summary import run_summary

    runner = Runner(cfg, progress=progress)
    stages = stages_to_run(only, start)
    if only is None and start is None and not forced:
        stages = _pending(runner)
    for warning in preflight(cfg, stages):
        log.warning(warning)
    t0 = time.perf_counter()
    results = runner.run(only=only, start=start, force=frozenset(forced))
    summary = run_summary(cfg, results, time.perf_counter() - t0)
    return RunReport(tuple(_stage_or_none("stage", s) for s in results), summary)


def _pending(runner: Runner) -> tuple[str, ...]:
    """The stages a plain run will execute (those not up to date), so that preflight checks only what
    they need: with nothing new, no model folder is opened and torch is not imported. Where the state
    cannot be read, every stage: preflight then says what is wrong."""
    from vadpack.pipeline.stages import STAGES

    try:
        return tuple(s.stage for s in runner.status() if s.state != "done")
    except (ValueError, OSError):
        return STAGES


def status(config: Config | str | os.PathLike[str], overrides: Overrides = ()) -> list[StageState]:
    """Each stage's state (``done``, ``stale`` with the reason, or ``missing``) and its row count.

    Returns:
        One :class:`StageState` per stage, in pipeline order.
    """
    return Runner(_as_config(config, _check_overrides(overrides)), progress=False).status()


def prune(config: Config | str | os.PathLike[str], dry_run: bool = False, overrides: Overrides = ()) -> PruneReport:
    """Remove cache files, store entries and exports that no recording of the archive uses any more.

    Returns:
        A ``PruneReport``: files and bytes removed (or that would be, with ``dry_run``) per kind.
    """
    from vadpack.pipeline.housekeeping import prune as prune_work_dir
    from vadpack.pipeline.lock import WorkDirLock
    from vadpack.pipeline.workdir import WorkDir

    cfg = _as_config(config, _check_overrides(overrides))
    work = WorkDir(cfg.work_path)
    if not work.root.is_dir():
        return PruneReport()
    with WorkDirLock(work.lock):
        return prune_work_dir(cfg, dry_run)


def read_tables(output_dir: str | os.PathLike[str], as_arrow: bool = False,
                recording_ids: Sequence[str] | None = None) -> Tables:
    """Read the public tables of an output folder, as of its last complete stitch.

    Each table is a folder of part files; the output folder's manifest lists the live ones, so a
    stitch running (or killed) meanwhile is never half seen.

    Args:
        output_dir: the run's ``output_dir`` (``<work_dir>/output`` by default; ``cfg.output_path``).
        as_arrow: return pyarrow Tables instead of pandas DataFrames.
        recording_ids: only these recordings' rows, reading only the part files that hold them (one
            per table for one recording, however large the archive).

    Raises:
        FileNotFoundError: a table is missing (the run has not finished its stitch stage).
    """
    from vadpack.core.dataset import read_dataset
    from vadpack.core.tables import OUTPUT_SCHEMAS

    out = Path(_check_path("output_dir", output_dir))
    if isinstance(recording_ids, str):
        raise TypeError("read_tables: recording_ids must be a list of ids, not one string; "
                        f"write recording_ids=[{recording_ids!r}]")
    tables: dict[str, Any] = {}
    for name in OUTPUT_SCHEMAS:
        table = read_dataset(out, name, OUTPUT_SCHEMAS[name], recording_ids)
        tables[name] = table if as_arrow else table.to_pandas()
    return Tables(**tables)


@contextmanager
def vadpack_logging(enabled: bool = True, level: int = logging.INFO) -> Iterator[None]:
    """Inside: the ``vadpack`` logger writes to stderr in vadpack's own format, whatever the root logger
    says (FunASR configures the root logger when it is imported).

    Nothing changes when ``enabled`` is False or when the logger already has a handler: a library user
    who routes ``logging.getLogger("vadpack")`` keeps their routing.
    """
    logger = logging.getLogger("vadpack")
    if not enabled or logger.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(level)
    logger.propagate = False  # not also in the root logger's format
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# ---- argument checks ----------------------------------------------------------------------------

def _check_stage(arg: str, value: object) -> Stage | None:
    """``value`` as a stage name, or None; a clear error naming ``arg`` and the choices otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a stage name ({', '.join(STAGES)}); got {type(value).__name__} {value!r}")
    for s in STAGES:
        if value == s:
            return s
    hint = f" (did you mean {value.lower()!r}?)" if value.lower() in STAGES else ""
    raise ValueError(f"{arg}={value!r} is not a stage{hint}; choose one of {', '.join(STAGES)}")


def _check_force(force: object, only: Stage | None, start: Stage | None) -> frozenset[Stage]:
    """The stages ``force`` names: a stage, a list of stages, or True for the stages the run covers."""
    if force is True:
        if only is not None:
            return frozenset({only})
        return frozenset(STAGES[STAGES.index(start):] if start is not None else STAGES)
    if force is False or force is None:
        return frozenset()
    if isinstance(force, str):
        return frozenset({_stage_or_none("force", force)})
    if isinstance(force, Iterable) and not isinstance(force, (bytes, Mapping)):
        return frozenset(_stage_or_none("force", s) for s in force)
    raise TypeError(f"force must be a stage, a list of stages or True; got {type(force).__name__} {force!r}")


def _stage_or_none(arg: str, value: object) -> Stage:
    stage = _check_stage(arg, value)
    if stage is None:
        raise TypeError(f"{arg} lists None; give stage names ({', '.join(STAGES)})")
    return stage


def _check_overrides(overrides: object) -> tuple[str, ...] | dict[str, object]:
    """Overrides as a tuple of ``key=value`` strings or a dict; a single string is refused (it would
    be read letter by letter)."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of 'key=value' strings or a dict; got the string {overrides!r} "
                        f"(write [{overrides!r}])")
    if isinstance(overrides, Mapping):
        bad = [k for k in overrides if not isinstance(k, str)]
        if bad:
            raise TypeError(f"overrides: the key {bad[0]!r} is not a string; keys are dotted names like "
                            "'packer.budget_s'")
        return dict(overrides)
    if isinstance(overrides, Iterable) and not isinstance(overrides, bytes):
        items = tuple(overrides)
        bad_items = [i for i in items if not isinstance(i, str)]
        if bad_items:
            raise TypeError(f"overrides: {bad_items[0]!r} is not a 'key=value' string")
        return tuple(str(i) for i in items)
    raise TypeError(f"overrides must be a list of 'key=value' strings or a dict; got {type(overrides).__name__}")


def _check_path(arg: str, value: object) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{arg} must be a path (str or pathlib.Path); got {type(value).__name__}")
    return os.fspath(value)


def _as_config(config: object, overrides: tuple[str, ...] | dict[str, object]) -> Config:
    if isinstance(config, Config):
        if overrides:
            raise ValueError("overrides apply to a config file; pass the path, or load_config(path, overrides)")
        return config
    return _load_config(_check_path("config", config), overrides)


__all__ = ["STAGES", "Config", "ConfigError", "FailureRow", "PreflightError", "PruneReport", "RunReport",
           "RunSummary", "Stage", "StageOrderError", "StageState", "Tables", "load_config", "make_config", "prune",
           "read_tables", "run", "status", "vadpack_logging"]
