"""The cost of a batch: what the GPU computes once every item is padded to the longest one.

Lengths are counted in the model's real input frames, after fbank (25 ms window, 10 ms shift at
16 kHz, ``snip_edges``) and low frame rate stacking (LFR, ``lfr_m=7``, ``lfr_n=6``): one LFR frame
covers 60 ms. Counting samples or seconds instead would misjudge short items, whose frame count is
rounded up by the LFR stacking.

The linear cost of a batch is ``n_items * longest_frames``. With ``quadratic_q`` (seconds) a batch
also pays ``n_items * longest**2 / q`` for self-attention, so a segment of ``q`` seconds costs
twice its length.
"""

from __future__ import annotations

import math

import numpy as np
from vadpack.core.cache import SAMPLE_RATE

FBANK_WINDOW_SAMPLES = 400  # 25 ms
FBANK_SHIFT_SAMPLES = 160  # 10 ms
LFR_N = 6  # frames skipped per LFR frame (lfr_m=7 only widens each frame; it does not change the count)
FRAME_S = FBANK_SHIFT_SAMPLES * LFR_N / SAMPLE_RATE  # 0.06 s per LFR frame
_FRAME_MS = 60


def feature_frames(n_samples: np.ndarray | int) -> np.ndarray:
    """Number of LFR feature frames FunASR's ``WavFrontend`` makes from ``n_samples`` samples.

    Matches ``funasr/frontends/wav_frontend.py`` exactly: ``kaldi.fbank`` with ``snip_edges`` gives
    ``1 + (n - 400) // 160`` frames, and ``apply_lfr`` gives ``ceil(fbank / 6)``. For fewer than 400
    samples the frontend shrinks its window to the whole waveform (``frame_length=min(25 ms, len)``),
    which yields one fbank frame, hence one LFR frame. Below 2 samples the frontend raises, and
    such an item has 0 frames here.

    Args:
        n_samples: segment lengths in samples at 16 kHz (any integer array shape, or one int).

    Returns:
        int64 array of the same shape.
    """
    n = np.asarray(n_samples, dtype=np.int64)
    fbank = 1 + (n - FBANK_WINDOW_SAMPLES) // FBANK_SHIFT_SAMPLES
    fbank = np.where(n >= FBANK_WINDOW_SAMPLES, fbank, np.where(n >= 2, 1, 0))
    return -(-fbank // LFR_N)  # ceil division in integers, no float rounding


def seconds_to_frames(seconds: float) -> int:
    """Whole LFR frames in ``seconds`` (rounded down, so a budget in frames never exceeds its seconds).

    Goes through integer milliseconds so that 300 s is exactly 5000 frames, not 4999.
    """
    return round(seconds * 1000) // _FRAME_MS


def item_cost(longest_frames: np.ndarray | int, quadratic_q: float | None) -> np.ndarray:
    """Cost in frames that each item of a batch pays when the longest item has ``longest_frames``.

    An item of 0 frames is charged as 1 frame, so the budget still bounds the count.
    """
    longest = np.maximum(np.asarray(longest_frames, dtype=np.float64), 1.0)
    if quadratic_q is None:
        return longest
    return longest + longest * longest / (quadratic_q / FRAME_S)


def batch_cost(n_items: np.ndarray | int, longest_frames: np.ndarray | int,
               quadratic_q: float | None) -> np.ndarray:
    """Padded cost in frames of a batch of ``n_items`` padded to ``longest_frames``."""
    return np.asarray(n_items, dtype=np.float64) * item_cost(longest_frames, quadratic_q)


def items_that_fit(longest_frames: np.ndarray, budget_frames: int, max_items: int,
                   quadratic_q: float | None) -> np.ndarray:
    """Most items a batch whose longest item has ``longest_frames`` may hold, for many batches at once.

    0 means that even one such item is over budget (it will get a batch of its own).
    """
    cost = item_cost(longest_frames, quadratic_q)
    n = np.floor(budget_frames / cost)
    n -= n * cost > budget_frames  # float division can round up by one ulp; the budget is never exceeded
    return np.minimum(n, max_items).astype(np.int64)


class CostModel:
    """A batching rule with ``add / exceeded / reset``, like lhotse's ``TimeConstraint``.

    It tracks the batch being filled. ``exceeded`` charges ``n_items * longest`` (plus the quadratic
    term), which is exactly the padded work of the batch. The vectorised packer does not step through
    items with this object; it is the readable reference that tests compare the packer against.
    """

    def __init__(self, budget_frames: int, max_items: int, quadratic_q: float | None = None) -> None:
        if budget_frames < 1 or max_items < 1:
            raise ValueError(f"budget_frames ({budget_frames}) and max_items ({max_items}) must be >= 1")
        self.budget_frames = budget_frames
        self.max_items = max_items
        self.quadratic_q = quadratic_q
        self.reset()

    def add(self, frames: int) -> None:
        """Count one more item of ``frames`` LFR frames into the current batch."""
        self.n_items += 1
        self.longest = max(self.longest, int(frames))

    def cost(self) -> float:
        """Padded cost of the current batch, in frames."""
        return float(batch_cost(self.n_items, self.longest, self.quadratic_q)) if self.n_items else 0.0

    def exceeded(self) -> bool:
        """True when the current batch is over the budget or holds more than ``max_items``."""
        return self.n_items > self.max_items or self.cost() > self.budget_frames

    def reset(self) -> None:
        """Start a new, empty batch."""
        self.n_items = 0
        self.longest = 0


def budget_frames_for(budget_s: float) -> int:
    """The budget in whole LFR frames; at least 1 so a tiny budget still makes progress."""
    if not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        raise ValueError(f"packer.budget_s must be a positive number of seconds, got {budget_s!r}")
    return max(1, seconds_to_frames(budget_s))
