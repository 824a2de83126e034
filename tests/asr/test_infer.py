"""Decoding: padding invariance, agreement with FunASR's own path, empty batches, OOM halving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from vadpack.asr import packed as packed_encoder
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.infer import decode_batch, decode_features
from vadpack.asr.model import load_model
from vadpack.asr.types import FeatureBatch, LoadedModel, SegmentResult
from vadpack.core.types import Span

from tests.asr.conftest import Archive, batch_keys, pack
from tests.asr.synth import speech_like

Key = tuple[str, int]
# (budget in padded seconds, shuffle seed or None for sorted-by-length packing)
COMPOSITIONS = [(12, None), (45, None), (150, None), (30, 1), (90, 2), (400, 3)]


@pytest.fixture(scope="module")
def lm(tiny_model: Path) -> LoadedModel:
    return load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2))


@pytest.fixture(scope="module")
def lm_stock(tiny_model: Path) -> LoadedModel:
    return load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2, pad_invariant=False))


@pytest.fixture(scope="module")
def alone(lm: LoadedModel, features: dict[Key, np.ndarray], audio: dict[Key, np.ndarray]
          ) -> dict[Key, SegmentResult]:
    return {k: decode_features(lm, *pad_features([f], 560), [len(audio[k]) // 16])[0]
            for k, f in features.items()}


def decode_packed(lm: LoadedModel, keys_per_batch: list[list[Key]], features: dict[Key, np.ndarray],
                  audio: dict[Key, np.ndarray]) -> dict[Key, SegmentResult]:
    out = {}
    for keys in keys_per_batch:
        feats, lengths = pad_features([features[k] for k in keys], 560)
        results = decode_features(lm, feats, lengths, [len(audio[k]) // 16 for k in keys])
        assert len(results) == len(keys)
        out.update(zip(keys, results))
    return out


def compositions(archive: Archive) -> list[list[list[Key]]]:
    out = []
    for budget, seed in COMPOSITIONS:
        rng = None if seed is None else np.random.default_rng(seed)
        out.append(batch_keys(pack(archive.spans(), budget, rng=rng), archive.spans()))
    return out


def test_results_are_well_formed(alone: dict[Key, SegmentResult], audio: dict[Key, np.ndarray]) -> None:
    # The random model must say something on speech, or the exactness tests below prove nothing.
    assert sum(len(r.tokens) for r in alone.values()) > 5 * len(alone)
    assert sum(bool(r.tokens) for r in alone.values()) >= len(alone) - 3
    for key, r in alone.items():
        seg_ms = len(audio[key]) // 16
        assert r.ok
        assert len(r.tokens) == len(r.token_start_ms) == len(r.token_end_ms)
        # Invariant: token times are inside the segment, each token ends after it starts, in order.
        assert all(0 <= s <= e <= seg_ms for s, e in zip(r.token_start_ms, r.token_end_ms))
        assert list(r.token_start_ms) == sorted(r.token_start_ms)
        assert all(e <= s for e, s in zip(r.token_end_ms, r.token_start_ms[1:]))  # no overlap


@pytest.mark.parametrize("which", range(len(COMPOSITIONS)))
def test_packed_batches_decode_like_single_segments(which: int, lm: LoadedModel, archive: Archive,
                                                    features: dict, audio: dict, alone: dict) -> None:
    batches = compositions(archive)[which]
    assert any(len(b) > 1 for b in batches)
    packed = decode_packed(lm, batches, features, audio)
    # Invariant: a segment decodes to the same tokens and timestamps alone as in any batch.
    assert {k: packed[k] for k in alone} == alone


def test_stock_paraformer_is_not_padding_invariant(lm_stock: LoadedModel, archive: Archive, features: dict,
                                                   audio: dict, alone: dict) -> None:
    def mismatches() -> int:
        decoded = [decode_packed(lm_stock, batches, features, audio) for batches in compositions(archive)[:3]]
        return sum(got[k] != alone[k] for got in decoded for k in alone)

    # FunASR's own encoder (what runs on CUDA), whose padded frames hold values.
    assert packed_encoder.uninstall(lm_stock.funasr_model)
    try:
        # Alone there is no padding, so the wrapper changes nothing ...
        assert decode_packed(lm_stock, [[k] for k in alone], features, audio) == alone
        # ... but in batches the stock predictor reads the first padded frame, and results change.
        assert mismatches() > 0
    finally:
        packed_encoder.install(lm_stock.funasr_model)
    # On the CPU the encoder runs on the real frames only and leaves the padded ones zero (asr.packed):
    # then the frame the stock predictor reads is the zero it reads alone, wrapper or not.
    assert mismatches() == 0


def test_same_tokens_as_funasr_generate(tiny_model: Path, audio: dict, alone: dict, tmp_path: Path) -> None:
    from funasr import AutoModel

    am = AutoModel(model=str(tiny_model), disable_update=True, device="cpu", ncpu=2, disable_pbar=True)
    picked = sorted(alone, key=lambda k: len(audio[k]))[2::5]  # short to 30 s
    for i, key in enumerate(picked):
        am.generate(input=[audio[key]], key=[f"seg{i}"], batch_size=1, output_dir=str(tmp_path),
                    disable_pbar=True)
    # Tokens only: FunASR 1.4.16 computes Paraformer times from swapped CIF curves (FunASR issue
    # #3723), so times are checked against hand-built curves instead (test_timestamps.py).
    # FunASR's text output merges pieces and adds spaces; its token file holds the raw tokens.
    lines = (tmp_path / "1best_recog" / "token").read_text(encoding="utf-8").splitlines()
    theirs = {line.split(" ", 1)[0]: tuple(line.split(" ")[1:]) for line in lines}
    assert sum(bool(alone[k].tokens) for k in picked) >= len(picked) - 1
    for i, key in enumerate(picked):
        assert theirs.get(f"seg{i}", ()) == alone[key].tokens, key


def test_all_empty_batch_gives_one_empty_result_per_item(lm: LoadedModel) -> None:
    # FunASR's own inference returns no result at all for such a batch.
    clips = [np.zeros(3200, np.float32), speech_like(0.1, seed=1), speech_like(0.2, seed=1),
             speech_like(0.3, seed=2)]
    feats, lengths = pad_features([segment_features(lm.frontend, c) for c in clips], 560)
    results = decode_features(lm, feats, lengths, [len(c) // 16 for c in clips])
    assert results == [SegmentResult()] * len(clips)


def test_a_batch_whose_last_item_fires_nothing(lm: LoadedModel, features: dict, audio: dict,
                                               alone: dict) -> None:
    # FunASR 1.4.16's cif_v1 indexes one frame past the end when the last item of a batch fires no
    # token and an earlier one does; decoding falls back to one item at a time, with the same results.
    speech = max(alone, key=lambda k: len(alone[k].tokens))
    silent = segment_features(lm.frontend, np.zeros(3200, np.float32))
    feats, lengths = pad_features([features[speech], silent], 560)
    with pytest.raises(IndexError):  # the upstream bug this guards against is still there
        x, n = torch.as_tensor(feats), torch.as_tensor(lengths).to(torch.int32)
        enc, enc_lens = lm.net.encode(x, n)[:2]
        lm.net.calc_predictor(enc, enc_lens)
    results = decode_features(lm, feats, lengths, [len(audio[speech]) // 16, 200])
    assert results == [alone[speech], SegmentResult()]


def _feature_batch(keys: list[Key], features: dict, audio: dict) -> FeatureBatch:
    feats, lengths = pad_features([features[k] for k in keys], 560)
    items = tuple(Span(k[0], k[1] * 10**7, k[1] * 10**7 + len(audio[k])) for k in keys)  # distinct spans
    return FeatureBatch(0, items, feats, lengths)


def test_oom_halves_the_batch_and_keeps_results(monkeypatch: pytest.MonkeyPatch, lm: LoadedModel,
                                               features: dict, audio: dict, alone: dict) -> None:
    keys = sorted(alone, key=lambda k: len(audio[k]))[:11]
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=2")
    outcome = decode_batch(lm, _feature_batch(keys, features, audio))
    assert outcome.splits >= 4
    assert dict(zip(keys, outcome.results)) == {k: alone[k] for k in keys}


def test_oom_on_a_single_segment_fails_only_that_segment(monkeypatch: pytest.MonkeyPatch, lm: LoadedModel,
                                                         features: dict, audio: dict) -> None:
    keys = sorted(features)[:3]
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=0")
    outcome = decode_batch(lm, _feature_batch(keys, features, audio))
    assert len(outcome.results) == 3
    assert all(not r.ok and "out of memory" in r.error for r in outcome.results)
