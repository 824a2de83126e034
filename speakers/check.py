"""What the speakers stage needs checked before any work: its device, its model, and the extras its
backends need."""

from __future__ import annotations

from pathlib import Path

from vadpack.core.device import device_problem
from vadpack.core.extras import Extra
from vadpack.core.models import model_spec_problem
from vadpack.speakers.config import SpeakersConfig

_RESEMBLYZER = (("speakers.enabled", True), ("speakers.backend", "resemblyzer"))
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
    if section.backend == "campp":
        problems.append(model_spec_problem("speakers.model", section.model_name, base_dir))
    elif section.model and not Path(section.model).expanduser().is_file():
        problems.append(f"speakers.model = {section.model!r}: no such checkpoint file; give a resemblyzer "
                        "VoiceEncoder checkpoint (.pt), or leave it empty for the weights in the wheel")
    return [p for p in problems if p]
