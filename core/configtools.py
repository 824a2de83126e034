"""Helpers that turn plain YAML mappings into frozen, validated config dataclasses."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any


class ConfigError(ValueError):
    """A config or usage problem a person must fix (exit code 2), found before or during a run."""


def from_mapping(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    """Build the dataclass ``cls`` from ``data``, rejecting keys it does not have.

    Lists become tuples so the result stays hashable and frozen.

    Raises:
        ValueError: when a key is unknown; the message names the key and the allowed keys.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(
            f"unknown config key {where + '.' if where else ''}{unknown[0]!s}; "
            f"allowed keys{' in ' + where if where else ''}: {', '.join(sorted(allowed))}"
        )
    return cls(**{k: _freeze(v) for k, v in data.items()})


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def as_plain(obj: Any) -> Any:
    """A JSON-ready view of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [as_plain(v) for v in obj]
    return obj


def stable_hash(obj: Any) -> str:
    """A short, stable hash of a config section or any JSON-able value."""
    text = json.dumps(as_plain(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def result_hash(cfg: Any) -> str:
    """The hash of the settings of a config section that change its stage's results.

    A section lists the keys that change only speed (worker counts, threads, prefetch) in its
    ``SPEED_ONLY`` class attribute; they are left out, so changing them never makes work stale.
    """
    plain = as_plain(cfg)
    for key in getattr(type(cfg), "SPEED_ONLY", ()):
        plain.pop(key, None)
    return stable_hash(plain)


def check_choice(where: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    """Raise ValueError naming ``where`` when ``value`` is not one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{where} = {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def check_range(where: str, value: float, lo: float | None = None, hi: float | None = None) -> None:
    """Raise ValueError naming ``where`` when ``value`` is outside [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{where} = {value!r} is out of range [{lo}, {hi}]")
