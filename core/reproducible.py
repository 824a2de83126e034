"""The CPU's matrix-product mode that makes a segment's result independent of its batch.

By default MKL picks a matrix product's kernel and threading by its shape, so the float32 sums of one
row depend on how many rows the product has: on a 2-core Xeon a (rows, 2048) x (2048, 512) product
gave its first 43 rows other bits with 43 rows than with 990 (2 threads), and products of a few rows
differ on one thread too. A segment's encoder and decoder products have as many rows as its batch
has frames, so its result depended on its batch at a near tie. MKL's strict reproducible mode
(Conditional Numerical Reproducibility, ``MKL_CBWR=AUTO,STRICT``) gave bit-identical rows for every
row count, on 1 and 2 threads, at no measured cost (a 1 h archive's 57 batches, random Paraformer-large,
2 threads: 99.0 s in this mode against 104.6 s without, with FunASR's attention; 96.0 s against 95.1 s
with vadpack's; bench/batch_invariance.py).

Torch-free, so the asr package can pin the mode when imported, before any matrix product.
"""

from __future__ import annotations

import functools
import os

MKL_CBWR = "AUTO,STRICT"


def pin_cpu_reproducibility() -> None:
    """Ask MKL for its strict reproducible mode (``MKL_CBWR``) unless the environment already chose one.

    MKL reads the variable at the process's first matrix product, so this must run before it: the
    asr package calls it when imported, and replica processes inherit the environment. Whether it
    took effect is measured, not assumed: ``cpu_rows_independent``.
    """
    os.environ.setdefault("MKL_CBWR", MKL_CBWR)


@functools.cache
def cpu_rows_independent(threads: int) -> bool:
    """Whether this process's float32 CPU matrix products give a row the same bits whatever the other rows.

    Measured with ``threads`` intra-op threads (the caller's setting is restored) on the shapes where
    the default MKL mode was seen to differ: 8 and 43 rows against 990, with an inner dimension of
    2048. About 20 ms, once per thread count.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(512, 2048, generator=gen)
        rows = torch.randn(990, 2048, generator=gen)
        full = torch.nn.functional.linear(rows, weight)
        return all(torch.equal(torch.nn.functional.linear(rows[:m], weight), full[:m]) for m in (8, 43))
    finally:
        torch.set_num_threads(before)
