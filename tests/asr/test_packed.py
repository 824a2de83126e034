"""The padding-free encoder (asr.packed): every item's encoder output is FunASR's own, the item alone.

Checked against FunASR's unmodified encoder (its own attention and layers) on each item alone, bit for
bit, never against a tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vadpack.asr import attention, packed
from vadpack.asr.config import AsrConfig
from vadpack.asr.model import load_model

LENGTHS = (50, 37, 9, 1, 44)  # frames: the longest first, shorter ones, a one-frame item, one out of order


@pytest.mark.parametrize("which", ["paraformer", "sensevoice"])
def test_each_item_is_funasrs_own_encoder_output_alone(which: str, tiny_model: Path, tiny_sensevoice: Path) -> None:
    folder = tiny_model if which == "paraformer" else tiny_sensevoice
    model = load_model(AsrConfig(model=str(folder), device="cpu", threads=2)).funasr_model
    assert packed.installed(model)
    dim = model.encoder.encoders0[0].self_attn.linear_q_k_v.in_features
    torch.manual_seed(3)
    items = [torch.randn(n, dim) for n in LENGTHS]
    batch = torch.zeros(len(items), max(LENGTHS), dim)
    for i, x in enumerate(items):
        batch[i, : len(x)] = x
    lengths = torch.tensor(LENGTHS)
    with torch.no_grad():
        out, out_lens = model.encoder(batch.clone(), lengths)[:2]  # a clone: SenseVoice's scales its input in place
        try:  # FunASR's own encoder and attention, for the items alone; the shared model is restored after
            assert packed.uninstall(model) and attention.uninstall(model)
            alone = [model.encoder(x[None].clone(), torch.tensor([len(x)]))[:2] for x in items]
        finally:
            attention.install(model)
            packed.install(model)
    assert packed.installed(model) and attention.installed(model)
    for i, (enc, enc_len) in enumerate(alone):
        n = LENGTHS[i]
        assert int(enc_len[0]) == int(out_lens[i]) == n and enc_len.dtype == out_lens.dtype
        assert torch.equal(out[i, :n], enc[0]), n  # every bit of every real frame
        assert not out[i, n:].any()  # the padded frames are zeros


def test_only_encoders_of_the_handled_shape_are_replaced(tiny_model: Path) -> None:
    paraformer = load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2)).funasr_model
    encoder = paraformer.encoder
    layer = encoder.encoders[0]
    layer.concat_after = True  # a layer shape handled by FunASR's own forward only
    try:
        assert not packed.supported(encoder)
    finally:
        layer.concat_after = False
    assert packed.supported(encoder)
