"""How far half precision's results are from float32's, as ``bench/precision.py`` measured them.

The run summary quotes these figures when ``asr.dtype`` is bfloat16 or float16; the whole table, with
the device and the reasons, is in bench/RESULTS.md (section "precision"). Rerun the benchmark and
update both together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeasuredAgreement:
    """How far a half precision's results are from float32's, as ``bench/precision.py`` measured it.

    Attributes:
        tokens_equal_fp32: share of segments whose tokens equal float32's.
        token_agreement: 1 - token edit distance to float32 / float32's tokens.
        batch_invariant: share of segments with the same tokens and times alone and in two batchings.
        measured: where and on what.
    """

    tokens_equal_fp32: float
    token_agreement: float
    batch_invariant: float
    measured: str


_MEASURED = "bench/precision.py, 2026-11-29, CPU x2, random Paraformer-large, 16 real speech segments of 2-8 s"
HALF_PRECISION_AGREEMENT = {
    "bfloat16": MeasuredAgreement(0.0, 0.892, 0.0625, _MEASURED),
    "float16": MeasuredAgreement(0.6875, 0.987, 0.6875, _MEASURED),
}
