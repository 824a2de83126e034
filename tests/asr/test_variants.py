"""BiCif- and SeACo-Paraformer: the wrapper and decoding work for them too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.infer import decode_features
from vadpack.asr.model import load_model
from vadpack.testkit.tiny import write_tiny_model

from tests.asr.synth import speech_like

DURATIONS_S = (0.6, 1.5, 2.4, 3.3, 4.7, 6.1, 8.0, 11.5)  # short: the BiCif timestamp LSTM is slow on CPU


@pytest.fixture(scope="module", params=["BiCifParaformer", "SeacoParaformer"])
def variant_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp(request.param), variant=request.param, seed=3)


def _decode_all(cfg: AsrConfig, batches: list[list[int]]) -> dict[int, object]:
    lm = load_model(cfg)
    clips = [speech_like(d, seed=50 + i) for i, d in enumerate(DURATIONS_S)]
    feats = [segment_features(lm.frontend, c) for c in clips]
    out = {}
    for items in batches:
        f, n = pad_features([feats[i] for i in items], 560)
        out.update(zip(items, decode_features(lm, f, n, [len(clips[i]) // 16 for i in items])))
    return out


def test_padded_batches_decode_like_single_segments(variant_model: Path) -> None:
    cfg = AsrConfig(model=str(variant_model), device="cpu", threads=2)
    alone = _decode_all(cfg, [[i] for i in range(len(DURATIONS_S))])
    assert sum(len(r.tokens) for r in alone.values()) > 2 * len(alone)
    order = list(np.random.default_rng(0).permutation(len(DURATIONS_S)))
    for batches in ([order], [order[:3], order[3:]], [sorted(order)[:5], sorted(order)[5:]]):
        # Invariant: tokens and (upsampled-CIF) timestamps do not depend on the batch.
        assert _decode_all(cfg, batches) == alone


def test_seaco_takes_hotwords(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "seaco", variant="SeacoParaformer", seed=3)
    cfg = AsrConfig(model=str(folder), device="cpu", threads=2, hotwords=("一丁", "the"))
    lm = load_model(cfg)
    hotword_ids = lm.family.hotword_ids
    assert hotword_ids is not None and len(hotword_ids) == 3  # the words, then FunASR's <s>
    results = _decode_all(cfg, [list(range(len(DURATIONS_S)))])
    assert len(results) == len(DURATIONS_S) and all(r.ok for r in results.values())
