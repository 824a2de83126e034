"""What the vad stage needs checked before any work: the fsmn backend's model folder, and the extra
the silero backend needs."""

from __future__ import annotations

from pathlib import Path

from vadpack.core.extras import Extra
from vadpack.vad.config import VadConfig

EXTRAS = (Extra("silero_vad", "silero", (("vad.backend", "silero"),)),)
# What FunASR's fsmn-vad needs of its folder to load (am.mvn too, which its config.yaml names).
FSMN_FILES = ("config.yaml", "model.pt")


def check(section: VadConfig) -> list[str]:
    """One line per problem with the ``vad`` section that only the disk can tell."""
    if section.backend != "fsmn":
        return []
    spec = section.fsmn_model
    folder = Path(spec or "").expanduser()
    missing = [name for name in FSMN_FILES if not (folder / name).is_file()]
    if spec and folder.is_dir() and not missing:
        return []
    what = f"lacks {', '.join(missing)}" if folder.is_dir() else "is not a folder"
    return [f"vad.fsmn_model = {spec!r} {what}; give a local fsmn-vad model folder (config.yaml, model.pt, am.mvn)"]
