"""vadpack: archives of long recordings -> VAD -> archive-wide packed batches -> FunASR -> Parquet.

The public Python API::

    import vadpack
    report = vadpack.run("configs/demo.yaml")
    tables = vadpack.read_tables("runs/demo/output")

``import vadpack`` itself is light: the names below are imported when first used (PEP 562), so a
worker process that imports ``vadpack.asr.features`` does not import the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vadpack.core import __version__

if TYPE_CHECKING:
    from vadpack.pipeline.api import (
        STAGES,
        Config,
        ConfigError,
        FailureRow,
        PreflightError,
        PruneReport,
        RunReport,
        RunSummary,
        Stage,
        StageOrderError,
        StageState,
        Tables,
        load_config,
        make_config,
        prune,
        read_tables,
        run,
        status,
        vadpack_logging,
    )

__all__ = [
    "STAGES",
    "Config",
    "ConfigError",
    "FailureRow",
    "PreflightError",
    "PruneReport",
    "RunReport",
    "RunSummary",
    "Stage",
    "StageOrderError",
    "StageState",
    "Tables",
    "__version__",
    "load_config",
    "make_config",
    "prune",
    "read_tables",
    "run",
    "status",
    "vadpack_logging",
]

_LAZY = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module("vadpack.pipeline.api"), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    raise AttributeError(f"module 'vadpack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
