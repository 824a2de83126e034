"""Token times against hand-built CIF curves whose fire positions are known, not against FunASR's output.

FunASR 1.4.16's ``Paraformer.inference`` hands the CIF peaks to ``ts_prediction_lfr6_standard`` as
the alphas and the alphas as the peaks (FunASR issue #3723). The helper then finds no fire in the
weights, falls back to integrating the peak curve, and returns the right number of times with wrong
boundaries. So these tests derive the expected times by hand from the curves, and check that
vadpack's decoding hands the predictor's curves over by what they are.

Frames here are 60 ms (main CIF) or 20 ms (BiCif's 3x upsampled CIF). Every weight is a multiple of
1/8, so sums are exact in float and each fire falls on a known frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from funasr.models.bicif_paraformer.cif_predictor import cif_wo_hidden
from funasr.models.paraformer.cif_predictor import cif_v1
from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.infer import to_device
from vadpack.asr.model import load_model
from vadpack.asr.paraformer import _decode, _timestamp_inputs, cif_stamps, token_times
from vadpack.testkit.tiny import write_tiny_model

from tests.asr.synth import speech_like

TOLERANCE_MS = 1  # FunASR truncates seconds * 1000 to int: 4.5 frames * 0.06 s gives 269, not 270


def _curve(length: int, weights: dict[int, float]) -> torch.Tensor:
    alphas = torch.zeros(1, length)
    for frame, w in weights.items():
        alphas[0, frame] = w
    return alphas


# Main CIF (CifPredictorV2) of a 24-frame segment plus FunASR's tail frame (24), mass 3.5 in all:
# four blocks of 7/8 each, ending at frames 6, 9, 15 and 24 (the tail). CIF fires where the running
# sum crosses 1, 2, 3: frames 8, 13 and 21.
MAIN_ALPHAS = _curve(25, {4: 0.25, 5: 0.5, 6: 0.125, 8: 0.5, 9: 0.375, 13: 0.375, 14: 0.25, 15: 0.25,
                          20: 0.25, 21: 0.125, 24: 0.5})
MAIN_FIRES = (8, 13, 21)
MAIN_SEGMENT_MS = 24 * 60


def _main_peaks() -> torch.Tensor:
    _, peaks = cif_v1(torch.randn(1, MAIN_ALPHAS.shape[1], 4), MAIN_ALPHAS, 1.0)  # what CifPredictorV2 runs
    return peaks


def test_fixture_fires_where_built() -> None:
    peaks = _main_peaks()[0]
    assert torch.nonzero(peaks >= 1.0 - 1e-4).flatten().tolist() == list(MAIN_FIRES)
    up_peaks = cif_wo_hidden(UP_ALPHAS, 1.0 - 1e-4)[0]
    assert torch.nonzero(up_peaks >= 1.0 - 1e-4).flatten().tolist() == list(UP_FIRES)


def test_main_cif_one_fire_per_token() -> None:
    # Three tokens, three fires: FunASR needs four boundaries, so it scales the weights to sum to 4
    # (each block then weighs exactly 1) and takes the block ends 6, 9, 15, 24, moved back 1.5 frames:
    # 4.5, 7.5, 13.5, 22.5 frames. The last token runs to the end of the curves (25 frames, 1500 ms),
    # clamped to the 1440 ms segment.
    (stamps,) = cif_stamps(MAIN_ALPHAS, _main_peaks(), [25])
    starts, ends = token_times(stamps, ("a", "b", "c"), MAIN_SEGMENT_MS)
    _assert_times(starts, ends, [270, 450, 810], [450, 810, 1440])


def test_main_cif_one_fire_more_than_tokens() -> None:
    # Two tokens (the decoder dropped a blank) and three fires: the fires are the boundaries. Frames
    # 8, 13, 21 moved back 1.5: 6.5, 11.5, 19.5 -> 390, 690, 1170 ms. The last fire is more than 5
    # frames before the end (25), so the last token ends halfway: 22.25 frames, 1335 ms.
    (stamps,) = cif_stamps(MAIN_ALPHAS, _main_peaks(), [25])
    starts, ends = token_times(stamps, ("a", "b"), MAIN_SEGMENT_MS)
    _assert_times(starts, ends, [390, 690], [690, 1335])


# BiCif's upsampled CIF (CifPredictorV3.get_upsample_timestamp), 10 encoder frames = 30 frames of
# 20 ms: three blocks of weight 1, so it fires at their ends, frames 9, 15 and 21.
UP_ALPHAS = _curve(30, {7: 0.25, 8: 0.5, 9: 0.25, 12: 0.25, 13: 0.25, 14: 0.25, 15: 0.25, 20: 0.5, 21: 0.5})
UP_FIRES = (9, 15, 21)


def test_upsampled_cif_times() -> None:
    # Two tokens, three fires: boundaries 7.5, 13.5, 19.5 frames of 20 ms -> 150, 270, 390 ms; the
    # last token ends halfway from 19.5 to the end (30): 24.75 frames, 495 ms.
    peaks = cif_wo_hidden(UP_ALPHAS, 1.0 - 1e-4)  # what get_upsample_timestamp runs
    (stamps,) = cif_stamps(UP_ALPHAS, peaks, [30], upsample_rate=3)
    starts, ends = token_times(stamps, ("a", "b"), 600)
    _assert_times(starts, ends, [150, 270], [270, 495])


@pytest.mark.parametrize("n_tokens", [2, 3])
def test_the_fixture_tells_the_argument_orders_apart(n_tokens: int) -> None:
    # FunASR 1.4.16's own order, peaks first, gives the right count and wrong boundaries here: if
    # vadpack's order were swapped, the tests above would fail.
    tokens = ["x"] * n_tokens
    peaks = _main_peaks()[0]
    _, right = ts_prediction_lfr6_standard(us_alphas=MAIN_ALPHAS[0].clone(), us_peaks=peaks.clone(),
                                           char_list=list(tokens), upsample_rate=1)
    _, swapped = ts_prediction_lfr6_standard(peaks.clone(), MAIN_ALPHAS[0].clone(), list(tokens), upsample_rate=1)
    assert len(swapped) == len(right) == n_tokens
    assert swapped != right


def _assert_times(starts: tuple[int, ...], ends: tuple[int, ...], want_starts: list[int],
                  want_ends: list[int]) -> None:
    assert len(starts) == len(want_starts) and len(ends) == len(want_ends)
    assert np.abs(np.array(starts) - want_starts).max() <= TOLERANCE_MS, starts
    assert np.abs(np.array(ends) - want_ends).max() <= TOLERANCE_MS, ends


# ---- the predictors' curves reach the timestamp function by what they are ------------------------


@pytest.fixture(scope="module", params=["Paraformer", "BiCifParaformer"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp(request.param), variant=request.param, seed=3)


def test_decoding_hands_over_alphas_as_alphas(model_dir: Path) -> None:
    lm = load_model(AsrConfig(model=str(model_dir), device="cpu", threads=2))
    clips = [speech_like(d, seed=70 + i) for i, d in enumerate((1.3, 2.8, 4.4))]
    feats, lengths = pad_features([segment_features(lm.frontend, c) for c in clips], 560)
    speech, speech_lengths = to_device(feats, lengths, lm)
    with torch.inference_mode():
        enc, enc_lens = lm.net.encode(speech, speech_lengths)[:2]
        _, token_num, alphas, peaks = lm.net.calc_predictor(enc, enc_lens)[:4]
        stamps = _timestamp_inputs(lm, enc, enc_lens, token_num.round().long(), alphas, peaks)
    threshold = float(lm.funasr_model.predictor.threshold)
    if lm.model_class != "Paraformer":
        threshold -= 1e-4  # the upsampled CIF fires a hair early, as FunASR integrates it
    for s in stamps:
        assert s.alphas.sum() > 1 and s.alphas.max() < 1  # weights, and enough to fire
        # Invariant: ``peaks`` is the CIF integral of ``alphas``, never the other way round.
        integral = cif_wo_hidden(s.alphas[None].clone(), threshold)[0]
        assert torch.allclose(s.peaks, integral, atol=1e-4)


def test_tiny_model_times_inside_segments_and_monotonic(model_dir: Path) -> None:
    lm = load_model(AsrConfig(model=str(model_dir), device="cpu", threads=2))
    clips = [speech_like(d, seed=80 + i) for i, d in enumerate((0.8, 2.1, 3.7, 6.4, 9.9))]
    feats, lengths = pad_features([segment_features(lm.frontend, c) for c in clips], 560)
    speech, speech_lengths = to_device(feats, lengths, lm)
    seg_ms = [len(c) // 16 for c in clips]
    with torch.inference_mode():
        results = _decode(lm, speech, speech_lengths, seg_ms)
    assert sum(len(r.tokens) for r in results) >= 2 * len(results)
    for r, ms in zip(results, seg_ms):
        starts, ends = list(r.token_start_ms), list(r.token_end_ms)
        # Invariant: inside the segment, each token ends after it starts, and tokens do not overlap.
        assert all(0 <= s <= e <= ms for s, e in zip(starts, ends))
        assert starts == sorted(starts) and ends == sorted(ends)
        assert all(e <= s for e, s in zip(ends, starts[1:]))
