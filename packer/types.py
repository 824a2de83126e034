"""Data types of the packer."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class PackStats:
    """Figures of one packing.

    Attributes:
        n_segments: segments packed (all of the input).
        n_batches: batches made.
        real_frames: sum of the items' own LFR frames.
        padded_frames: sum over batches of ``n_items * max_frames``.
        budget_s: the budget used, in padded seconds.
        budget_frames: the same budget in LFR frames (60 ms each), rounded down.
        n_over_budget: segments longer than the budget, each alone in its batch.
    """

    n_segments: int
    n_batches: int
    real_frames: int
    padded_frames: int
    budget_s: float
    budget_frames: int
    n_over_budget: int

    @property
    def efficiency(self) -> float:
        """Padding efficiency ``real / padded``: 1.0 means no padding at all (and for no batches)."""
        return self.real_frames / self.padded_frames if self.padded_frames else 1.0


@dataclass(frozen=True, slots=True)
class PackResult:
    """What ``pack_segments`` returns.

    Attributes:
        batches: one row per batch with the ``core.tables.BATCHES`` schema, longest batch first.
        warnings: messages a person should see (segments over budget, segments too short to decode).
        stats: padding efficiency and counts.
    """

    batches: pa.Table
    warnings: tuple[str, ...]
    stats: PackStats
