"""The progress bar every stage shows: on stderr, and only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, unit: str, desc: str, enabled: bool = True) -> Any:
    """A tqdm bar counting ``total`` ``unit``s, labelled ``desc``.

    It is disabled (draws nothing, costs almost nothing) unless ``enabled`` and stderr is a terminal,
    so logs and pipes never fill with carriage returns; ``bar.disable`` says which.
    """
    from tqdm import tqdm  # imported when a stage runs, not when vadpack is imported

    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled or not sys.stderr.isatty())
