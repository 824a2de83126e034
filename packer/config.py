"""Configuration of the pack stage."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from vadpack.core.configtools import check_fields, check_range


@dataclass(frozen=True, slots=True)
class PackerConfig:
    """Options of the pack stage.

    Attributes:
        budget_s: padded seconds per batch (``n_items * longest``), FunASR's ``batch_size_s`` but never
            exceeded; ``auto`` (the default) measures the loaded model's memory on CUDA and is 60 on
            the CPU, where padding, not memory, is what costs.
        max_items: most segments in one batch. The default is 128, not 256: in a small archive (say 1000
            files of 10-60 s, ~5k segments) the shortest segments are sparse, so a batch of 256 of them
            spans e.g. 1.1 s down to 0.8 s and padding efficiency drops to ~0.98; 128 keeps it at
            ~0.983 there for ~4 % more batches, and the long, budget-bound batches do not change.
        quadratic_q: when set (seconds), a batch also pays ``n_items * longest**2 / q`` for attention, so
            an item of ``q`` seconds costs twice its length. Off by default.
        buckets: optional increasing duration edges in seconds, e.g. ``[5, 15]``; a batch never mixes
            segments from two ranges. Off by default: sorting by length alone already makes batches
            homogeneous.
        memory_fraction: with ``budget_s: auto``, the share of free GPU memory to use.
    """

    budget_s: float | Literal["auto"] = "auto"
    max_items: int = 128
    quadratic_q: float | None = None
    buckets: tuple[float, ...] | None = None
    memory_fraction: float = 0.8

    def __post_init__(self) -> None:
        check_fields(self, "packer")
        check_range("packer.budget_s", self.budget_s, 1, 1e6, auto=True)
        check_range("packer.max_items", self.max_items, 1, 1_000_000)
        if self.quadratic_q is not None:
            check_range("packer.quadratic_q", self.quadratic_q, 1e-9, None)
        check_range("packer.memory_fraction", self.memory_fraction, 0.05, 0.99)
        if self.buckets is not None:
            _check_buckets(self.buckets)


def _check_buckets(buckets: tuple[float, ...]) -> None:
    for edge in buckets:
        check_range("packer.buckets", edge, 1e-3, 3600)
    if any(b <= a for a, b in itertools.pairwise(buckets)):
        raise ValueError(f"packer.buckets = {list(buckets)!r} must be strictly increasing durations "
                         f"in seconds, e.g. [5, 15]")
