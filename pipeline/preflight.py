"""Preflight: the mistakes a person can fix are found before any stage runs.

Without it a read-only output folder is found at stitch, after every hour of asr, and a model folder
without am.mvn at asr, after scan, vad and pack. Here each such mistake is one line that names the
key or the path and says what to do, and the run stops (exit 2) before a stage writes anything.
Every problem found is reported at once, so that one round of fixes is enough.

The checks only read: nothing is created, so a failed preflight leaves the disk as it was.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vadpack.asr.config import AsrConfig, is_local_model
from vadpack.core.configtools import ConfigError
from vadpack.pipeline.config import Config
from vadpack.pipeline.stages import STAGES


class PreflightError(ConfigError):
    """The config cannot run as it stands; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class Extra:
    """An optional dependency: when every ``(key, value)`` of ``when`` holds, ``module`` must import.

    Attributes:
        module: the module to find (not imported: finding is cheap and has no side effects).
        extra: the vadpack extra that installs it.
        when: dotted config keys and the values that need the module.
    """

    module: str
    extra: str
    when: tuple[tuple[str, Any], ...]


# One line per optional dependency: the module, the extra that installs it, and what needs it.
EXTRAS = (
    Extra("silero_vad", "silero", (("vad.backend", "silero"),)),
    Extra("ray", "ray", (("engine", "ray"),)),
    Extra("scipy", "speakers", (("speakers.enabled", True),)),
    # speakers.backend: auto resolves to resemblyzer unless the trained CAM++ folder is there.
    Extra("resemblyzer", "speakers", (("speakers.enabled", True), ("speakers.resolved_backend", "resemblyzer"))),
    Extra("librosa", "speakers", (("speakers.enabled", True), ("speakers.resolved_backend", "resemblyzer"))),
)

# A FunASR hub id: a registered short name (paraformer-zh) or namespace/name on the model hub.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.+-]*(/[A-Za-z0-9][\w.+-]*)?")


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
        problems += check_inputs(cfg, warnings)
    work_problem = check_writable("work_dir", cfg.work_path)
    problems += filter(None, [work_problem])
    # An output_dir left to default lies in work_dir: its problem is work_dir's, said once.
    if "stitch" in stages and (cfg.output_dir or not work_problem):
        problems += filter(None, [check_writable("output_dir", cfg.output_path)])
    problems += check_extras(cfg)
    if {"pack", "asr", "stitch"} & set(stages):
        model_problem = check_asr_model(cfg.asr.model, cfg.base_dir)
        problems += filter(None, [model_problem, check_device(cfg.asr.device, cfg.asr.dtype)])
        if model_problem is None:
            problems += filter(None, [check_family_settings(cfg.asr)])
    if "vad" in stages and cfg.vad.backend == "fsmn":
        problems += filter(None, [check_fsmn_model(cfg.vad.fsmn_model)])
    if "stitch" in stages and cfg.stitch.punc_model:
        problems += filter(None, [check_hub_or_folder("stitch.punc_model", cfg.stitch.punc_model, cfg.base_dir)])
    if "speakers" in stages and cfg.speakers.enabled:
        problems += check_speakers(cfg)
    if problems:
        raise PreflightError(problems)
    return warnings


def check_inputs(cfg: Config, warnings: list[str]) -> list[str]:
    """Every input entry names something, and together they name at least one audio file."""
    from vadpack.pipeline.scan import list_inputs

    try:
        listing = list_inputs(cfg)
    except ConfigError as e:
        return [str(e)]
    warnings += listing.notes
    if not listing.paths and not listing.errors:
        return [f"inputs {list(cfg.inputs)} hold no audio file; give audio files, folders, globs or a .txt list"]
    return list(listing.errors)


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


def check_asr_model(spec: str, base_dir: str = ".") -> str | None:
    """The model folder holds what decoding needs (``asr.model.check_model_folder``), or the hub id
    is one FunASR can fetch."""
    if not is_local_model(spec):
        return check_hub_or_folder("asr.model", spec, base_dir)
    from vadpack.asr.model import check_model_folder

    try:
        check_model_folder(spec)
    except Exception as e:  # noqa: BLE001 - any reason the folder cannot load is the person's to fix
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        return text if text.startswith("asr.model") else f"asr.model: {text}"
    return None


def check_family_settings(asr_cfg: AsrConfig) -> str | None:
    """The asr settings suit the model's family (``asr.language`` only for SenseVoice, hotwords only for
    SeACo-Paraformer). A folder's class is read from its config.yaml; a hub id's family is told by its
    name (``paraformer`` or ``sensevoice`` in it), else it is checked when the model loads."""
    from vadpack.asr.family import FAMILIES, FAMILY_CLASSES
    from vadpack.asr.model import model_class_of_folder

    spec = asr_cfg.model
    if is_local_model(spec):
        model_class: str | None = model_class_of_folder(spec)
        family = FAMILIES[model_class]
    else:
        name = spec.lower()
        model_class = None
        family = next((f for f in FAMILY_CLASSES if f.name in name), None)
        if family is None:
            return None
    try:
        family.check_settings(asr_cfg, model_class)
    except ConfigError as e:
        return str(e)
    return None


def check_hub_or_folder(key: str, spec: str, base_dir: str = ".") -> str | None:
    """A local folder must exist; a hub id must be well formed and, without a namespace, registered.

    ``models/tiny`` has the form of a hub id (namespace/name); when a folder ``models`` exists
    beside the config or here, it was meant as a path to a folder that is not there.
    """
    no_folder = f"{key} = {spec!r}: no such model folder; fix the path, or give a FunASR hub id"
    head = spec.split("/", 1)[0]
    if is_local_model(spec) or ("/" in spec and any((Path(d) / head).is_dir() for d in (base_dir, "."))):
        return None if Path(spec).expanduser().is_dir() else no_folder
    if not _HUB_ID.fullmatch(spec):
        return f"{no_folder} (a hub id is a name such as paraformer-zh, or namespace/name)"
    names = _funasr_short_names()
    if "/" not in spec and names and spec not in names:
        return f"{key} = {spec!r} is not a folder and not a FunASR model name; give a model folder, a " \
               f"namespace/name hub id, or one of {', '.join(sorted(names))}"
    return None


def check_speakers(cfg: Config) -> list[str]:
    """The speakers device exists; its model is a folder or hub id (campp) or a checkpoint file."""
    sp = cfg.speakers
    problems = [check_device(sp.device, "float32", key="speakers.device")]
    if sp.resolved_backend == "campp" and not sp.model:
        problems.append(check_default_campp(sp.model_name))
    elif sp.resolved_backend == "campp":
        problems.append(check_hub_or_folder("speakers.model", sp.model_name, cfg.base_dir))
    elif sp.model and not Path(sp.model).expanduser().is_file():
        problems.append(f"speakers.model = {sp.model!r}: no such checkpoint file; give a resemblyzer VoiceEncoder "
                        "checkpoint (.pt), or leave it empty for the weights in the wheel")
    return [p for p in problems if p]


def check_default_campp(folder: str) -> str | None:
    """The trained CAM++ that ``make speaker-models`` writes is there (``speakers.model`` left empty)."""
    from vadpack.speakers.config import CAMPP_MAKE_TARGET, campp_folder_ready

    if campp_folder_ready(folder):
        return None
    return (f"speakers.model is empty, so speakers.backend = 'campp' needs the trained CAM++ in {folder}; "
            f"run `{CAMPP_MAKE_TARGET}` (or give speakers.model a CAM++ folder)")


def check_fsmn_model(spec: str | None) -> str | None:
    folder = Path(spec or "").expanduser()
    missing = [name for name in ("config.yaml", "model.pt") if not (folder / name).is_file()]
    if spec and folder.is_dir() and not missing:
        return None
    what = f"lacks {', '.join(missing)}" if folder.is_dir() else "is not a folder"
    return f"vad.fsmn_model = {spec!r} {what}; give a local fsmn-vad model folder (config.yaml, model.pt, am.mvn)"


def check_device(device: str, dtype: str, key: str = "asr.device") -> str | None:
    """``device`` names a device this machine has, and it supports ``dtype``."""
    if device in ("auto", "cpu"):
        return None
    from vadpack.asr.model import resolve_dtype
    from vadpack.core.device import resolve_device

    try:
        resolve_dtype(dtype, resolve_device(device, key))
    except ValueError as e:
        return str(e)
    return None


@functools.cache
def _funasr_short_names() -> frozenset[str]:
    """FunASR's registered short model names (paraformer-zh, ct-punc, ...), read from its name map
    file without importing FunASR (which takes seconds and prints to stdout); empty when unknown."""
    spec = importlib.util.find_spec("funasr")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(next(iter(spec.submodule_search_locations))) / "download" / "name_maps_from_hub.py"
    try:
        scope = runpy.run_path(str(path))
    except Exception:  # noqa: BLE001 - another FunASR layout: ids are then checked by their form only
        return frozenset()
    return frozenset({**scope.get("name_maps_ms", {}), **scope.get("name_maps_hf", {})})
