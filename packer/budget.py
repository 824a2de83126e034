"""``budget_s: auto``: the largest padded-seconds budget that fits in the free GPU memory.

This module measures nothing itself, so it stays testable without a GPU. The caller (the asr
side, which owns the model and the device) provides the probe and the free memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from packer.config import PackerConfig

MIN_BUDGET_S = 1.0  # the smallest budget packer.budget_s accepts
MAX_BUDGET_S = 1e6


def auto_budget_s(probe_fn: Callable[[], float], free_bytes: int, cfg: PackerConfig) -> float:
    """The padded-seconds budget that uses ``cfg.memory_fraction`` of ``free_bytes``.

    Activation memory of a batch grows with its padded length, so the budget is
    ``memory_fraction * free_bytes / bytes_per_padded_second``, rounded down to whole seconds.

    How to measure (on CUDA, model loaded, caches emptied): ``free_bytes`` is
    ``torch.cuda.mem_get_info()[0]`` taken *after* loading the model. ``probe_fn`` runs one forward
    pass on a probe batch of the longest segments (e.g. 4 x 30 s of noise), with
    ``torch.cuda.reset_peak_memory_stats()`` before and ``max_memory_allocated()`` after, and returns
    ``(peak - allocated_before) / (n_items * longest_s)``. Probing with the longest items gives the
    highest cost per padded second (attention grows with length), so shorter batches stay safe.

    Args:
        probe_fn: returns the measured peak bytes of GPU memory per padded second of batch.
        free_bytes: free GPU memory in bytes, with the model already loaded.
        cfg: the packer options; ``memory_fraction`` leaves headroom for fragmentation.

    Returns:
        The budget in padded seconds, within ``[1, 1e6]``.

    Raises:
        ValueError: when the probe result is not a positive number, or when not even one padded
            second fits; the message says what to do.
    """
    bytes_per_s = float(probe_fn())
    if not math.isfinite(bytes_per_s) or bytes_per_s <= 0:
        raise ValueError(f"the memory probe returned {bytes_per_s!r} bytes per padded second; expected a "
                         f"positive number (is the model on CUDA?)")
    if free_bytes < 0:
        raise ValueError(f"free_bytes = {free_bytes} is negative")
    budget_s = math.floor(cfg.memory_fraction * free_bytes / bytes_per_s)
    if budget_s < MIN_BUDGET_S:
        raise ValueError(f"only {free_bytes / 2**20:.0f} MiB of GPU memory is free, less than one padded "
                         f"second of batch needs ({bytes_per_s / 2**20:.0f} MiB); free the GPU, raise "
                         f"packer.memory_fraction, or set packer.budget_s to a number")
    return float(min(budget_s, MAX_BUDGET_S))
