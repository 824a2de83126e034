"""What the speakers stage needs checked before any work: its device, its model, and the extras its
backends need."""

from __future__ import annotations

from pathlib import Path

from vadpack.core.device import device_problem
from vadpack.core.extras import Extra
from vadpack.core.models import model_spec_problem
from vadpack.speakers.config import SpeakersConfig

# speakers.backend: auto resolves to resemblyzer unless the trained CAM++ folder is there.
_RESEMBLYZER = (("speakers.enabled", True), ("speakers.resolved_backend", "resemblyzer"))
EXTRAS = (
    Extra("scipy", "speakers", (("speakers.enabled", True),)),
    Extra("resemblyzer", "speakers", _RESEMBLYZER),
    Extra("librosa", "speakers", _RESEMBLYZER),
)


def check(section: SpeakersConfig, base_dir: str = ".") -> list[str]:
    """One line per problem: the device exists; the model is a folder or hub id (campp) or a checkpoint
    file (resemblyzer). Nothing when the stage is off."""
    if not section.enabled:
        return []
    problems = [device_problem(section.device, "speakers.device")]
    if section.resolved_backend == "campp" and not section.model:
        problems.append(default_campp_problem(section.model_name))
    elif section.resolved_backend == "campp":
        problems.append(model_spec_problem("speakers.model", section.model_name, base_dir))
    elif section.model and not Path(section.model).expanduser().is_file():
        problems.append(f"speakers.model = {section.model!r}: no such checkpoint file; give a resemblyzer "
                        "VoiceEncoder checkpoint (.pt), or leave it empty for the weights in the wheel")
    if section.regions in ("segmentation", "trim"):
        problems.append(segmentation_problem(section.regions))
    return [p for p in problems if p]


def segmentation_problem(regions: str = "segmentation") -> str | None:
    """The segmentation-3.0 weights that ``speakers.regions: segmentation`` or ``trim`` needs are there
    (``auto`` does without them)."""
    from vadpack.speakers.segmentation import SEGMENTATION_MAKE_TARGET, WEIGHTS_FILE, default_segmentation_dir

    weights = default_segmentation_dir() / WEIGHTS_FILE
    if weights.is_file():
        return None
    return (f"speakers.regions = {regions!r} needs the segmentation-3.0 weights in {weights.parent}; "
            f"run `{SEGMENTATION_MAKE_TARGET}` (or set speakers.regions: auto or vad)")


def default_campp_problem(folder: str) -> str | None:
    """The trained CAM++ that ``make speaker-models`` writes is there (``speakers.model`` left empty)."""
    from vadpack.speakers.config import CAMPP_MAKE_TARGET, campp_folder_ready

    if campp_folder_ready(folder):
        return None
    return (f"speakers.model is empty, so speakers.backend = 'campp' needs the trained CAM++ in {folder}; "
            f"run `{CAMPP_MAKE_TARGET}` (or give speakers.model a CAM++ folder)")
