"""The cost model: feature frames as FunASR counts them, budgets in frames, the add/exceeded/reset rule."""

from __future__ import annotations

import numpy as np
import pytest
from vadpack.packer.cost import (
    CostModel,
    batch_cost,
    budget_frames_for,
    feature_frames,
    items_that_fit,
    seconds_to_frames,
)

# Lengths around every rounding edge: the fbank window (400), its shift (160) and the LFR step (6 x 160).
EDGE_LENGTHS = [2, 3, 159, 399, 400, 401, 559, 560, 561, 1359, 1360, 1361, 16_000, 16_159, 16_160, 480_000]


def test_feature_frames_known_values():
    # 400 samples: 1 fbank frame -> 1 LFR frame; 1360: 7 fbank -> 2; 30 s: 2998 fbank -> 500.
    got = feature_frames(np.array([0, 1, 2, 399, 400, 1359, 1360, 16_000, 480_000]))
    assert got.tolist() == [0, 0, 1, 1, 1, 1, 2, 17, 500]
    assert got.dtype == np.int64


def test_feature_frames_scalar_and_monotonic():
    assert int(feature_frames(16_000)) == 17
    frames = feature_frames(np.arange(0, 50_000))
    assert np.all(np.diff(frames) >= 0)


def test_feature_frames_match_funasr_frontend():
    """Invariant: our frame count is the real input length of the model (FunASR's WavFrontend, LFR 7/6)."""
    torch = pytest.importorskip("torch")
    wav_frontend = pytest.importorskip("funasr.frontends.wav_frontend")
    frontend = wav_frontend.WavFrontend(lfr_m=7, lfr_n=6, dither=0.0)
    gen = torch.Generator().manual_seed(0)
    for n in EDGE_LENGTHS:
        audio = torch.randn(1, n, generator=gen) * 0.1
        _, lengths = frontend(audio, torch.tensor([n]))
        assert int(lengths[0]) == int(feature_frames(n)), n


def test_seconds_to_frames_is_exact_for_round_budgets():
    assert seconds_to_frames(300) == 5000  # 0.06 s per frame: no 4999 from float error
    assert seconds_to_frames(0.06) == 1
    assert seconds_to_frames(0.119) == 1  # rounded down: the budget is never exceeded
    assert budget_frames_for(1.0) == 16
    with pytest.raises(ValueError, match="budget_s"):
        budget_frames_for(0)


def test_quadratic_term_doubles_cost_at_q():
    # q = 30 s: a 30 s item (500 frames) costs 1000 frames, a 15 s item 1.5 x its length.
    assert float(batch_cost(1, 500, None)) == 500
    assert float(batch_cost(1, 500, 30.0)) == pytest.approx(1000)
    assert float(batch_cost(2, 250, 30.0)) == pytest.approx(750)
    assert items_that_fit(np.array([500, 250]), 5000, 256, 30.0).tolist() == [5, 13]
    assert items_that_fit(np.array([500, 250]), 5000, 256, None).tolist() == [10, 20]


def test_items_that_fit_caps_and_zero_when_over_budget():
    fit = items_that_fit(np.array([600, 500, 5, 0]), 500, 64, None)
    assert fit.tolist() == [0, 1, 64, 64]  # a 0-frame item is charged 1 frame


def test_cost_model_add_exceeded_reset():
    rule = CostModel(budget_frames=1000, max_items=3)
    for frames in (300, 200, 100):
        rule.add(frames)
        assert not rule.exceeded()
    assert rule.cost() == 900  # 3 items padded to 300
    rule.add(50)
    assert rule.exceeded()  # 4 > max_items
    rule.reset()
    assert rule.cost() == 0 and not rule.exceeded()
    rule.add(1001)
    assert rule.exceeded()
