"""asr's view of FunASR: the registry with the Paraformer classes checked (``core.funasr``), and
registered classes by name."""

from __future__ import annotations

from typing import Any

from vadpack.core.funasr import funasr_registry

REQUIRED_MODELS = ("Paraformer",)


def funasr_tables() -> Any:
    """FunASR's class registry, after checking that the Paraformer classes registered.

    Raises:
        ImportError: when FunASR is not installed or its Paraformer module failed to import.
    """
    return funasr_registry(REQUIRED_MODELS, "the asr stage")


def registered_class(table: str, name: str) -> type:
    """The FunASR class registered as ``name`` in ``table`` (e.g. ``encoder_classes``).

    Raises:
        ValueError: when no class of that name is registered.
    """
    registry = getattr(funasr_tables(), table)
    cls = registry.get(name)
    if cls is None:
        raise ValueError(f"FunASR has no {table[:-8]} class {name!r}; known: {', '.join(sorted(registry))}")
    return cls
