"""Preflight: the mistakes a person can fix are found before any stage runs.

Without it a read-only output folder is found at stitch, after every hour of asr, and a model folder
without am.mvn at asr, after scan, vad and pack. Here each such mistake is one line that names the
key or the path and says what to do, and the run stops (exit 2) before a stage writes anything.
Every problem found is reported at once, so that one round of fixes is enough.

The checks only read: nothing is created, so a failed preflight leaves the disk as it was.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from vadpack.asr.check import check as check_asr
from vadpack.core.configtools import ConfigError
from vadpack.core.extras import Extra
from vadpack.packer.check import check as check_packer
from vadpack.pipeline.config import Config
from vadpack.pipeline.stages import STAGES
from vadpack.scan.check import check as check_scan
from vadpack.speakers.check import EXTRAS as SPEAKERS_EXTRAS
from vadpack.speakers.check import check as check_speakers
from vadpack.stitcher.check import check as check_stitch
from vadpack.vad.check import EXTRAS as VAD_EXTRAS
from vadpack.vad.check import check as check_vad


class PreflightError(ConfigError):
    """The config cannot run as it stands; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


# Each optional dependency, declared by what needs it: the vad and speakers stages, and the ray engine.
EXTRAS = (*VAD_EXTRAS, Extra("ray", "ray", (("engine", "ray"),)), *SPEAKERS_EXTRAS)


def stages_to_run(only: str | None = None, start: str | None = None) -> tuple[str, ...]:
    """The stages a run may execute: ``--stage S`` is S alone, ``--from S`` is S and after."""
    if only:
        return (only,)
    return STAGES[STAGES.index(start):] if start else STAGES


def preflight(cfg: Config, stages: tuple[str, ...] = STAGES) -> list[str]:
    """Check what ``stages`` need before any of them runs.

    Args:
        cfg: the loaded (and so already validated) config.
        stages: the stages that may run (see :func:`stages_to_run`); a check that only a stage
            outside them needs is skipped (``--stage scan`` needs no model).

    Returns:
        Warnings worth a line each (an input folder that holds no audio).

    Raises:
        PreflightError: one line per problem found.
    """
    problems: list[str] = []
    warnings: list[str] = []
    if "scan" in stages:
        problems += check_scan(cfg.inputs, cfg.base_dir, cfg.not_inputs, warnings)
    work_problem = check_writable("work_dir", cfg.work_path)
    problems += filter(None, [work_problem])
    # An output_dir left to default lies in work_dir: its problem is work_dir's, said once.
    if "stitch" in stages and (cfg.output_dir or not work_problem):
        problems += filter(None, [check_writable("output_dir", cfg.output_path)])
    problems += check_extras(cfg)
    if {"pack", "asr", "stitch"} & set(stages):  # pack budgets for the model; stitch names it
        problems += check_asr(cfg.asr, cfg.base_dir)
    if "pack" in stages:
        problems += check_packer(cfg.packer)
    if "vad" in stages:
        problems += check_vad(cfg.vad)
    if "stitch" in stages:
        problems += check_stitch(cfg.stitch, cfg.base_dir)
    if "speakers" in stages:
        problems += check_speakers(cfg.speakers, cfg.base_dir)
    if problems:
        raise PreflightError(problems)
    return warnings


def check_writable(key: str, path: Path) -> str | None:
    """None when ``path`` is a folder vadpack can write, or can create; else why not and what to do.

    Nothing is created here: the nearest existing ancestor must be a folder this process may write
    (``os.access`` also sees a read-only mount, which stops root too).
    """
    probe = Path(path)
    while not (probe.exists() or probe.is_symlink()) and probe != probe.parent:
        probe = probe.parent
    fix = f"set {key} to a folder you can write (-o {key}=PATH)"
    if not probe.is_dir():
        if probe == path:
            return f"{key} {path} is a file, not a folder; {fix}"
        return f"{key} {path} cannot be created: {probe} is a file, not a folder; {fix}"
    fs_type = virtual_fs_type(probe)
    if fs_type is not None:
        return f"{key} {path} is on {fs_type}, a virtual file system of the kernel that holds no files; {fix}"
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "is not writable" if probe == path else f"cannot be created: {probe} is not writable"
        return f"{key} {path} {why} (permission denied or a read-only file system); {fix}"
    return None


# Kernel file systems where no data file can live (root may "write" there: os.access says yes).
VIRTUAL_FS = frozenset({"proc", "sysfs", "devpts", "devtmpfs", "cgroup", "cgroup2", "debugfs", "tracefs",
                        "securityfs", "configfs", "pstore", "bpf", "fusectl", "mqueue", "efivarfs", "binfmt_misc"})


def virtual_fs_type(path: Path) -> str | None:
    """The type of the kernel file system (``proc``, ``sysfs``, ...) that holds ``path``, or None (also
    where the mount table cannot be read, as on a system without /proc)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type if best_type in VIRTUAL_FS else None


def check_extras(cfg: Config) -> list[str]:
    """Each optional dependency the config asks for is installed."""
    problems = []
    for need in EXTRAS:
        if all(config_value(cfg, key) == value for key, value in need.when) and \
                importlib.util.find_spec(need.module) is None:
            asks = " and ".join(f"{key.replace('.resolved_', '.')} = {value!r}" for key, value in need.when)
            problems.append(f"{asks} needs the {need.extra!r} extra ({need.module} is not installed): "
                            f"pip install 'vadpack[{need.extra}]'")
    return problems


def config_value(cfg: Config, key: str) -> Any:
    """The value of a dotted key (``vad.backend``); None when a section or key does not exist."""
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part, None)
    return node
