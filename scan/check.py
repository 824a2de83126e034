"""What the scan stage needs checked before any work: every input entry names something, and together
they name at least one audio file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from vadpack.core.configtools import ConfigError
from vadpack.scan.inputs import list_inputs


def check(inputs: Sequence[str], base_dir: str | Path = ".", exclude: Mapping[str, Path] | None = None,
          warnings: list[str] | None = None) -> list[str]:
    """One line per problem with ``inputs`` (see :func:`scan.inputs.list_inputs` for the arguments).

    ``warnings``, when given, receives the notes worth a line that stop nothing (a folder that holds
    no audio file).
    """
    try:
        listing = list_inputs(inputs, base_dir, exclude)
    except ConfigError as e:
        return [str(e)]
    if warnings is not None:
        warnings += listing.notes
    if not listing.paths and not listing.errors:
        return [f"inputs {list(inputs)} hold no audio file; give audio files, folders, globs or a .txt list"]
    return list(listing.errors)
