"""Configuration of the pack stage."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.configtools import check_range


@dataclass(frozen=True, slots=True)
class PackerConfig:
    """Options of the pack stage.

    Attributes:
        budget_s: padded seconds per batch (``n_items * longest``), FunASR's ``batch_size_s`` but never
            exceeded; ``auto`` measures the loaded model's memory on CUDA.
        max_items: most segments in one batch.
        quadratic_q: when set, a batch also pays ``n_items * longest**2 / q`` (attention cost).
        buckets: optional duration edges in seconds; segments are packed within each bucket.
        memory_fraction: with ``budget_s: auto``, the share of free GPU memory to use.
    """

    budget_s: float | str = 300.0
    max_items: int = 256
    quadratic_q: float | None = None
    buckets: tuple[float, ...] | None = None
    memory_fraction: float = 0.8

    def __post_init__(self) -> None:
        if self.budget_s != "auto":
            check_range("packer.budget_s", self.budget_s, 1, 1e6)
        check_range("packer.max_items", self.max_items, 1, 1_000_000)
        if self.quadratic_q is not None:
            check_range("packer.quadratic_q", self.quadratic_q, 1e-9, None)
        check_range("packer.memory_fraction", self.memory_fraction, 0.05, 0.99)
