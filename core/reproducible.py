"""Whether a float32 CPU matrix product gives a row the same bits whatever the other rows: measured, not assumed.

A segment's matrix products share rows with the rest of its batch wherever vadpack packs the batch's
frames or tokens into one product (the encoder's and decoder's linear layers). BLAS libraries pick a
kernel by the product's shape, so a row can come out with other bits in a product of another row
count. Measured here (``probe_rows``, Paraformer-large's shapes): on an AMD EPYC with AVX2 and no
AVX-512, in MKL's default and strict modes alike, on 1 and 2 threads, the rows of a product whose row
count is not a multiple of 4 come out otherwise than the same rows inside a 512-row product (1-3,
5-7, 9-11, ... rows), while every multiple of 4 agreed, at any offset; on a 2-core Xeon in MKL's
default mode, 43 rows against 990 differed on 2 threads. MKL documents its reproducible mode
(``MKL_CBWR``) for Intel processors only, and aarch64 builds of torch use other libraries, so no mode
is trusted: ``probe_rows`` measures this machine with the model's own product shapes and thread count
and finds a rounding of the row count (a multiple of a *quantum*, at least a *floor*) under which
every measured row agrees with itself inside a larger product. vadpack then computes every product
with a rounded row count, zero rows appended (``asr.invariant``); where no rounding works, it decodes
each segment on its own, so a segment's products have shapes that depend on it alone.

No BLAS mode is set: ``MKL_CBWR`` (``AUTO,STRICT`` is MKL's strict reproducible mode, which
``bench/e2e.py`` sets for FunASR's side and ours alike, since FunASR's own tokens change with its
thread count in MKL's default mode) is the user's to choose, and the probe measures whichever is in force.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vadpack.core.atomic import write_text_atomic
from vadpack.core.usercache import user_cache_dir

MKL_CBWR = "AUTO,STRICT"  # MKL's strict reproducible mode, for benchmarks that compare with FunASR
SMALL_ROWS = tuple(range(1, 18))  # the row counts a short segment's products really have (frames, tokens)
LARGER_ROWS = (20, 23, 24, 32, 47, 48, 64, 100, 104, 112, 128, 257, 260, 264, 272)  # and a long one's
REFERENCE_ROWS = 512  # the rows of the product they are compared inside (a batch's packed rows)
OFFSETS = (0, 3)  # where the compared rows sit inside it: the start, and an odd place in the middle
QUANTA = (1, 2, 4, 8, 16)  # row counts are rounded up to a multiple of one of these
FLOORS = tuple(range(1, 18))  # and raised to at least one of these
BLAS_SETTINGS = ("MKL_", "OPENBLAS_", "OMP_", "ONEDNN_", "DNNL_", "ATEN_CPU_CAPABILITY", "KMP_")


@dataclass(frozen=True, slots=True)
class RowProbe:
    """What ``probe_rows`` saw on this machine.

    Attributes:
        threads: the intra-op threads the products ran on.
        shapes: the (inner size, outputs, with a bias) of every product shape measured (the model's
            linear layers: a bias makes it another kernel call, an addmm rather than an mm).
        rows: the row counts measured, each inside a product of ``REFERENCE_ROWS`` rows.
        differing: (inner size, outputs, rows) of every product whose rows came out with other bits
            alone than inside the larger product, at some offset.
        quantum: every product's row count is rounded up to a multiple of this (zero rows appended),
            or None when no rounding makes every measured row count agree: then vadpack decodes each
            segment on its own.
        floor: and raised to at least this many rows.
    """

    threads: int
    shapes: tuple[tuple[int, int, bool], ...]
    rows: tuple[int, ...]
    differing: tuple[tuple[int, int, int], ...]
    quantum: int | None
    floor: int

    @property
    def row_independent(self) -> bool:
        """Whether rounded row counts (``padded_rows``) make every row's bits independent of the others."""
        return self.quantum is not None

    def padded_rows(self, rows: int) -> int:
        """The row count a product of ``rows`` rows is computed with (``row_independent`` only)."""
        quantum = self.quantum or 1
        return -(-max(rows, self.floor) // quantum) * quantum

    def describe(self) -> str:
        """One line for the log and the run summary: what differed on this CPU and what vadpack does about it."""
        measured = (f"{len(self.shapes)} product shapes x {min(self.rows)}-{max(self.rows)} rows, "
                    f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        if not self.differing:
            return f"measured on this CPU: a product's rows do not depend on its row count ({measured})"
        rows = _ranges(sorted({m for _, _, m in self.differing}))
        seen = f"measured on this CPU: products of {rows} rows round otherwise than inside larger ones"
        if self.quantum is None:
            return f"{seen}; no row count is safe, so each segment is decoded on its own ({measured})"
        parts = [f"a multiple of {self.quantum}"] if self.quantum > 1 else []
        rule = " and ".join(parts + ([f"at least {self.floor}"] if self.floor > 1 else [])) or "any number of"
        return f"{seen}; every linear layer runs on {rule} rows ({measured})"


def probe_rows(shapes: Iterable[tuple[int, int, bool]], threads: int) -> RowProbe:
    """Measure, for each (inner size, outputs, bias) product shape, which row counts depend on the other rows.

    For every shape and every row count in ``SMALL_ROWS + LARGER_ROWS``, rows of random data are
    multiplied alone and compared bit for bit with the same rows inside a product of
    ``REFERENCE_ROWS`` rows, at each of ``OFFSETS``; with ``threads`` intra-op threads (the caller's
    setting is restored). About 1-2 s for Paraformer-large's shapes on 2 cores, so the result is kept in
    the user cache (``core.usercache``) under everything it depends on: the CPU's model and instruction
    set, torch's build (its BLAS and CPU capability), the BLAS settings in the environment, the thread
    count and the shapes. A machine, a build or a setting that differs is measured anew.
    """
    return _probe_cached(tuple(sorted(set(shapes))), threads)


@functools.cache
def _probe_cached(shapes: tuple[tuple[int, int, bool], ...], threads: int) -> RowProbe:
    path = _cache_path(shapes, threads)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RowProbe(threads=data["threads"], shapes=tuple(tuple(x) for x in data["shapes"]),  # type: ignore[misc]
                        rows=tuple(data["rows"]), differing=tuple(tuple(x) for x in data["differing"]),  # type: ignore[misc]
                        quantum=data["quantum"], floor=data["floor"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    probe = _probe(shapes, threads)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(dataclasses.asdict(probe)), durable=False)
    except OSError:  # an unwritable cache costs a probe per process, nothing else
        pass
    return probe


def _cache_path(shapes: tuple[tuple[int, int, bool], ...], threads: int) -> Path:
    import torch

    key = {"version": 1, "shapes": shapes, "threads": threads, "rows": SMALL_ROWS + LARGER_ROWS,
           "torch": torch.__version__, "build": torch.__config__.show(), "cpu": _cpu_identity(),
           "capability": torch.backends.cpu.get_cpu_capability(),
           "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(BLAS_SETTINGS)}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return user_cache_dir() / "row-probes" / f"{digest}.json"


def _cpu_identity() -> str:
    """The CPU's model name and instruction-set flags (/proc/cpuinfo's first processor), or the platform's."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").split("\n\n")[0].splitlines()
        return "\n".join(line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part")))
    except OSError:
        return platform.processor() or platform.machine()


def _probe(shapes: tuple[tuple[int, int, bool], ...], threads: int) -> RowProbe:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = SMALL_ROWS + LARGER_ROWS
    differing = []
    try:
        gen = torch.Generator().manual_seed(0)
        for inner, outputs, with_bias in shapes:
            weight = torch.randn(outputs, inner, generator=gen)
            bias = torch.randn(outputs, generator=gen) if with_bias else None
            data = torch.randn(REFERENCE_ROWS, inner, generator=gen)
            inside = torch.nn.functional.linear(data, weight, bias)
            for m in rows:
                if any(not torch.equal(torch.nn.functional.linear(data[o: o + m].clone(), weight, bias),
                                       inside[o: o + m]) for o in OFFSETS):
                    differing.append((inner, outputs, m))
    finally:
        torch.set_num_threads(before)
    quantum, floor = _rounding(rows, {m for _, _, m in differing})
    return RowProbe(threads=threads, shapes=shapes, rows=rows, differing=tuple(differing),
                    quantum=quantum, floor=floor)


def _rounding(rows: tuple[int, ...], differing: set[int]) -> tuple[int | None, int]:
    """The smallest (quantum, floor) under which every measured row count is computed with a row
    count that was measured and agreed; (None, 1) when there is none."""
    for quantum in QUANTA:
        for floor in FLOORS:
            used = {-(-max(m, floor) // quantum) * quantum for m in rows}
            if used <= set(rows) - differing:
                return quantum, floor
    return None, 1


def _ranges(values: Iterable[int]) -> str:
    """[1, 2, 3, 5, 7, 8] -> '1-3, 5, 7-8'."""
    out: list[list[int]] = []
    for v in sorted(set(values)):
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out)
