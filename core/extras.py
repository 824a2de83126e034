"""Optional dependencies a config can ask for, declared by the stage that needs them (``vad.check``,
``speakers.check``) and checked, all of them, before any work (``pipeline.preflight``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
