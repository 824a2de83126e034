"""The packing budget rule: ``packer.budget_s`` as a number, from what asr measured on its device.

This module measures nothing itself, so it stays testable without a GPU. The asr side measures (the
loaded model's peak memory per padded second of batch, and the free memory); the orchestrator calls
:func:`resolve_budget_s` with those numbers, and records the budget it resolved.
"""

from __future__ import annotations

import math

from vadpack.packer.config import PackerConfig

MIN_BUDGET_S = 1.0  # the smallest budget packer.budget_s accepts
MAX_BUDGET_S = 1e6
# On the CPU memory is rarely the limit but padding is: a batch gains little past a few items
# (random Paraformer-large, 2 cores: 8 equal items decode 1.9x faster batched than alone at 3 s,
# 1.4x at 10 s, 1.1x at 25 s) while every padded frame costs in full. Small, homogeneous batches
# win: a 30-minute archive decoded in 81 s at 60 padded seconds, 86 s at 120 and 101 s at 300.
CPU_BUDGET_S = 60.0


def is_auto(cfg: PackerConfig) -> bool:
    """Whether ``packer.budget_s`` is ``auto`` (resolved for the device) rather than a number of seconds."""
    return cfg.budget_s == "auto"


def needs_measurement(cfg: PackerConfig, device_type: str) -> bool:
    """Whether the budget needs asr's measurement of the loaded model: ``auto`` on CUDA, and only there."""
    return is_auto(cfg) and device_type == "cuda"


def resolve_budget_s(cfg: PackerConfig, device_type: str, bytes_per_padded_s: float | None = None,
                     free_bytes: int | None = None) -> float:
    """The padded-seconds budget to pack with.

    Args:
        cfg: the packer options.
        device_type: ``cpu`` or ``cuda``, where asr will decode.
        bytes_per_padded_s: with ``budget_s: auto`` on CUDA, the measured peak memory per padded second.
        free_bytes: with ``budget_s: auto`` on CUDA, the free device memory with the model loaded.

    Returns:
        ``cfg.budget_s`` when it is a number; for ``auto``, :data:`CPU_BUDGET_S` on the CPU and
        :func:`auto_budget_s` of the measurement on CUDA.

    Raises:
        ValueError: ``auto`` on CUDA without a measurement, or a measurement that leaves no budget.
    """
    if not is_auto(cfg):
        return float(cfg.budget_s)
    if not needs_measurement(cfg, device_type):
        return CPU_BUDGET_S
    if bytes_per_padded_s is None or free_bytes is None:
        raise ValueError("packer.budget_s = auto on CUDA needs the measured memory per padded second "
                         "and the free memory; set packer.budget_s to a number to skip the measurement")
    return auto_budget_s(bytes_per_padded_s, free_bytes, cfg.memory_fraction)


def auto_budget_s(bytes_per_padded_s: float, free_bytes: int, memory_fraction: float) -> float:
    """The padded-seconds budget that uses ``memory_fraction`` of ``free_bytes``.

    Activation memory of a batch grows with its padded length, so the budget is
    ``memory_fraction * free_bytes / bytes_per_padded_s``, rounded down to whole seconds.

    How it is measured (on CUDA, model loaded, caches emptied): ``free_bytes`` is
    ``torch.cuda.mem_get_info()[0]`` taken *after* loading the model; ``bytes_per_padded_s`` is the
    peak memory above what was allocated before one forward pass on a probe batch of the longest
    segments (e.g. 4 x 30 s of noise), divided by its padded seconds. Probing with the longest items
    gives the highest cost per padded second (attention grows with length), so shorter batches stay
    safe.

    Args:
        bytes_per_padded_s: measured peak bytes of GPU memory per padded second of batch.
        free_bytes: free GPU memory in bytes, with the model already loaded.
        memory_fraction: the share of free memory to use; leaves headroom for fragmentation.

    Returns:
        The budget in padded seconds, within ``[1, 1e6]``.

    Raises:
        ValueError: when the measurement is not a positive number, or when not even one padded
            second fits; the message says what to do.
    """
    bytes_per_s = float(bytes_per_padded_s)
    if not math.isfinite(bytes_per_s) or bytes_per_s <= 0:
        raise ValueError(f"the memory probe returned {bytes_per_s!r} bytes per padded second; expected a "
                         f"positive number (is the model on CUDA?)")
    if free_bytes < 0:
        raise ValueError(f"free_bytes = {free_bytes} is negative")
    budget_s = math.floor(memory_fraction * free_bytes / bytes_per_s)
    if budget_s < MIN_BUDGET_S:
        raise ValueError(f"only {free_bytes / 2**20:.0f} MiB of GPU memory is free, less than one padded "
                         f"second of batch needs ({bytes_per_s / 2**20:.0f} MiB); free the GPU, raise "
                         f"packer.memory_fraction, or set packer.budget_s to a number")
    return float(min(budget_s, MAX_BUDGET_S))
