"""Halving a batch that runs out of memory, down to single items: asr's decoding and speakers' embedding.

A batch that does not fit is split in two and each half retried, recursively, so one oversized
batch costs a few retries instead of the run. An item that runs out of memory on its own gets a
failure result with the reason; the other items still get theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from vadpack.core.faults import fault_arg

R = TypeVar("R")


def halve_on_oom(run: Callable[[int, int], list[R]], n_items: int, device: torch.device,
                 alone: Callable[[str], R]) -> tuple[list[R], int]:
    """Run ``run(0, n_items)``; on out-of-memory halve the range and retry, down to single items.

    Args:
        run: the results of items ``[lo, hi)``, one per item, in order; may raise ``torch.OutOfMemoryError``.
        n_items: how many items the batch has (at least one).
        device: where ``run`` computes; on CUDA the allocator's cache is emptied after each failure.
        alone: the result of an item that runs out of memory on its own, made from the message
            ``out of memory on its own (<reason>)``.

    Returns:
        One result per item, in order, and how many times a range was halved.
    """
    return _run_or_halve(run, 0, n_items, device, alone)


def _run_or_halve(run: Callable[[int, int], list[R]], lo: int, hi: int, device: torch.device,
                  alone: Callable[[str], R]) -> tuple[list[R], int]:
    try:
        return run(lo, hi), 0
    except torch.OutOfMemoryError as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    # Only out here are the traceback's frames, and the GPU tensors they hold, released.
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if hi - lo == 1:
        return [alone(f"out of memory on its own ({reason})")], 0
    mid = lo + (hi - lo) // 2
    left, n_left = _run_or_halve(run, lo, mid, device, alone)
    right, n_right = _run_or_halve(run, mid, hi, device, alone)
    return left + right, 1 + n_left + n_right


def maybe_inject_oom(n_items: int) -> None:
    """Test-only: ``VADPACK_FAULTS=cuda_oom=N`` makes a model call on more than N items run out of memory."""
    limit = fault_arg("cuda_oom")
    if limit is not None and n_items > int(limit or 0):
        raise torch.OutOfMemoryError(f"injected fault: CUDA out of memory on {n_items} items (cuda_oom={limit})")
