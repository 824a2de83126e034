"""Helpers that turn plain YAML mappings into frozen, validated config dataclasses."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
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


def result_hash(cfg: Any, leave_out: tuple[str, ...] = (), **extra: Any) -> str:
    """The hash of the settings of a config section that change its stage's results: the one config hasher.

    A section lists the keys that change only speed (worker counts, threads, prefetch) in its
    ``SPEED_ONLY`` class attribute; they are left out, so changing them never makes work stale.

    Args:
        cfg: a config dataclass.
        leave_out: further keys to leave out (a store keys asr's ``model`` by the model's identity,
            not by how it is named).
        extra: values that join the settings (asr's ``results_version``).
    """
    plain = as_plain(cfg)
    for key in (*getattr(type(cfg), "SPEED_ONLY", ()), *leave_out):
        plain.pop(key, None)
    return stable_hash({**plain, **extra})


def check_fields(cfg: Any, section: str) -> None:
    """Check every field of a config dataclass against its type annotation.

    Called first in each config's ``__post_init__``, so that the range and choice checks after it
    see the types they expect, and a value of the wrong type fails here, naming its key, instead of
    deep inside a stage (``asr.threads: 1.5`` would reach ``torch.set_num_threads``). Booleans are
    not numbers here although Python says they are: ``max_items: true`` is a mistake, not 1.

    Raises:
        ValueError: ``<section>.<key> must be <what the annotation allows>, got <value>``.
    """
    hints = _type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if _accepts(hints[f.name], value):
            continue
        where = f"{section}.{f.name}" if section else f.name
        if isinstance(value, str) and _is_list_type(hints[f.name]):
            raise ValueError(f"{where} must be a list, got the string {value!r}; write [{value}] for one item")
        raise ValueError(f"{where} must be {_describe(hints[f.name])}, got {value!r}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _members(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union (``int | None``), or the hint itself."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _is_list_type(hint: Any) -> bool:
    return any(typing.get_origin(m) is tuple for m in _members(hint))


def _accepts(hint: Any, value: Any) -> bool:
    for member in _members(hint):
        origin = typing.get_origin(member)
        if origin is tuple:
            item = typing.get_args(member)[0]
            if isinstance(value, tuple) and all(_accepts(item, v) for v in value):
                return True
        elif typing.get_origin(member) is typing.Literal:
            if value in typing.get_args(member) and isinstance(value, str):
                return True
        elif member is type(None):
            if value is None:
                return True
        elif member is bool:
            if isinstance(value, bool):
                return True
        elif member is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif member is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return True
        elif isinstance(member, type) and isinstance(value, member):
            return True
    return False


_WORDS = {int: "a whole number", float: "a finite number", bool: "true or false", str: "a string",
          type(None): "null"}


def _describe(hint: Any) -> str:
    words = []
    for member in _members(hint):
        if typing.get_origin(member) is typing.Literal:
            words += map(repr, typing.get_args(member))
        elif typing.get_origin(member) is tuple:
            words.append(f"a list of {_describe(typing.get_args(member)[0]).removeprefix('a ')}s")
        else:
            words.append(_WORDS.get(member, getattr(member, "__name__", str(member))))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_choice(where: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    """Raise ValueError naming ``where`` when ``value`` is not one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{where} = {value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


def check_range(where: str, value: float | str, lo: float | None = None, hi: float | None = None, *,
                auto: bool = False) -> None:
    """Raise ValueError naming ``where`` when ``value`` is outside [lo, hi]; ``auto=True`` also allows "auto"."""
    if auto and value == "auto":
        return
    or_auto = " or auto" if auto else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number{or_auto}, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = ", ".join("" if b is None else str(int(b)) if b == int(b) else str(b) for b in (lo, hi))
        raise ValueError(f"{where} = {value!r} is out of range [{bounds}]; give a number in it{or_auto}")
