"""Per-item attention on the CPU: a segment's result is bit-identical in any batch, as alone.

Checked against the item alone, bit for bit: FunASR's own modules (real classes, seeded weights) on
hand-made batches, then the whole tiny Paraformer and SenseVoice encoders and decoders through
``decode_features``; FunASR's unmodified forward alone agrees up to rounding (another product shape).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vadpack.asr import attention, invariant
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.infer import decode_features
from vadpack.asr.model import bit_exact_batches, load_model

from tests.asr.synth import speech_like

LENGTHS = (50, 37, 9, 1)  # the longest first, then shorter ones, a one-frame item


def _padded(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(x) for x in items)
    batch = torch.zeros(len(items), longest, items[0].size(1))
    for i, x in enumerate(items):
        batch[i, : len(x)] = x
    lengths = torch.tensor([len(x) for x in items])
    mask = (torch.arange(longest)[None, :] < lengths[:, None]).float()[:, None, :]
    return batch, mask


def _sanm(seed: int = 0) -> torch.nn.Module:
    from funasr.models.sanm.attention import MultiHeadedAttentionSANM

    torch.manual_seed(seed)
    module = MultiHeadedAttentionSANM(n_head=4, in_feat=64, n_feat=64, dropout_rate=0.0, kernel_size=11).eval()
    return module


def _cross(seed: int = 0) -> torch.nn.Module:
    from funasr.models.sanm.attention import MultiHeadedAttentionCrossAtt

    torch.manual_seed(seed)
    return MultiHeadedAttentionCrossAtt(n_head=4, n_feat=64, dropout_rate=0.0).eval()


def _exact(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with vadpack's per-item attention and this machine's row rounding (``asr.invariant``)."""
    attention.install(module)
    invariant.install(module, invariant.probe(module))
    return module


def test_self_attention_of_each_item_is_its_attention_alone() -> None:
    stock, exact = _sanm(), _exact(_sanm())
    assert attention.installed(exact) and not attention.installed(stock)
    torch.manual_seed(1)
    items = [torch.randn(n, 64) for n in LENGTHS]
    batch, mask = _padded(items)
    with torch.no_grad():
        together = exact(batch, mask)
        for i, x in enumerate(items):
            alone = exact(x[None], torch.ones(1, 1, len(x)))
            assert torch.equal(together[i, : len(x)], alone[0]), LENGTHS[i]  # every bit
            # FunASR's own forward alone: the same up to the rounding of another product shape
            torch.testing.assert_close(alone, stock(x[None], torch.ones(1, 1, len(x))), rtol=0, atol=1e-6)


def test_cross_attention_of_each_item_is_its_attention_alone() -> None:
    stock, exact = _cross(), _exact(_cross())
    torch.manual_seed(2)
    memories = [torch.randn(n, 64) for n in LENGTHS]
    queries = [torch.randn(q, 64) for q in (7, 3, 5, 1)]
    memory, memory_mask = _padded(memories)
    query, _ = _padded(queries)
    with torch.no_grad():
        with attention.token_lengths([len(q) for q in queries]):
            together = exact(query, memory, memory_mask)
        for i, (q, m) in enumerate(zip(queries, memories)):
            with attention.token_lengths([len(q)]):
                alone = exact(q[None], m[None], torch.ones(1, 1, len(m)))
            assert torch.equal(together[i, : len(q)], alone[0]), i
            torch.testing.assert_close(alone, stock(q[None], m[None], torch.ones(1, 1, len(m))), rtol=0, atol=1e-6)


def test_masks_that_are_not_a_prefix_take_funasrs_own_path() -> None:
    assert attention.prefix_lengths(torch.tensor([[[1.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]]]), 2) == [2, 1]
    assert attention.prefix_lengths(torch.tensor([[[1.0, 0.0, 1.0]]]), 1) is None  # a hole
    assert attention.prefix_lengths(torch.ones(1, 3, 3), 1) is None  # a full (time1, time2) mask
    assert attention.prefix_lengths(None, 1) is None
    stock, exact = _sanm(), _sanm()
    attention.install(exact)
    x, holes = torch.randn(1, 3, 64), torch.tensor([[[1.0, 0.0, 1.0]]])
    with torch.no_grad():
        assert torch.equal(exact(x, holes), stock(x, holes))


@pytest.mark.parametrize("which", ["paraformer", "sensevoice"])
def test_a_model_decodes_every_segment_bit_identically_in_its_batch(which: str, tiny_model: Path,
                                                                     tiny_sensevoice: Path) -> None:
    folder = tiny_model if which == "paraformer" else tiny_sensevoice
    lm = load_model(AsrConfig(model=str(folder), device="cpu", threads=2))
    assert attention.installed(lm.funasr_model) and bit_exact_batches(lm)
    clips = [speech_like(seconds, seed) for seed, seconds in enumerate((6.3, 2.1, 4.4, 0.7, 5.9))]
    feats = [segment_features(lm.frontend, clip) for clip in clips]
    dim = feats[0].shape[1]
    padded, lengths = pad_features(feats, dim)
    segment_ms = [len(c) // 16 for c in clips]
    with torch.no_grad():
        enc_batch, _ = lm.funasr_model.encoder(torch.from_numpy(padded), torch.from_numpy(lengths))[:2]
        together = decode_features(lm, padded, lengths, segment_ms)
        for i, f in enumerate(feats):
            one, one_len = pad_features([f], dim)
            enc_alone, enc_len = lm.funasr_model.encoder(torch.from_numpy(one), torch.from_numpy(one_len))[:2]
            n = int(enc_len[0])
            assert torch.equal(enc_batch[i, :n], enc_alone[0, :n]), i  # every bit of the encoder output
            assert decode_features(lm, one, one_len, segment_ms[i : i + 1])[0] == together[i]
    assert sum(len(r.tokens) for r in together) > len(clips)
