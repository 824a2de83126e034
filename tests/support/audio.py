"""Decoding helpers for tests and benchmarks, built on ``core.audio.decode_16k``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from vadpack.core.audio import decode_16k, to_int16


class AudioWarning(UserWarning):
    """A file decoded with a caveat (truncated, non-finite samples); the message says what happened."""


def iter_decode_16k(path: str, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """16 kHz mono float32 blocks of ``path``; caveats are issued as :class:`AudioWarning` at the end."""
    notes: list[str] = []
    yield from decode_16k(path, block_s, notes)
    for note in notes:
        warnings.warn(f"{path}: {note}", AudioWarning, stacklevel=2)


def decode_int16(path: str) -> np.ndarray:
    """The whole of ``path`` as 16 kHz mono int16 samples (for files that fit in memory)."""
    return np.concatenate([to_int16(b) for b in iter_decode_16k(path)])
