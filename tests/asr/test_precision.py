"""Half precision decodes (on the CPU too), and float32 keeps its promise on CUDA (TF32 off while decoding).

FunASR 1.4.16 fails in bfloat16 and float16 at two places, whatever the device: the CIF
integration (float32 weights written into half-precision frames) and the decoder (float32 masks
into a half-precision convolution). These tests decode with a half-precision model on the CPU,
which now honours ``asr.dtype``, through vadpack's own path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import pad_features, segment_features
from vadpack.asr.infer import decode_features, exact_float32
from vadpack.asr.model import load_model, resolve_dtype
from vadpack.testkit.tiny import write_tiny_model

from tests.asr.synth import speech_like

DURATIONS_S = (0.9, 2.2, 3.6, 5.1, 7.4)


@pytest.fixture(scope="module", params=["Paraformer", "BiCifParaformer", "SeacoParaformer"])
def variant_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp(request.param), variant=request.param, seed=3)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_decodes(variant_model: Path, dtype: str) -> None:
    lm = load_model(AsrConfig(model=str(variant_model), device="cpu", threads=2, dtype=dtype))
    assert lm.dtype == getattr(torch, dtype)
    assert next(lm.funasr_model.encoder.parameters()).dtype == lm.dtype
    assert next(lm.funasr_model.predictor.parameters()).dtype == torch.float32  # CIF stays float32
    clips = [speech_like(d, seed=90 + i) for i, d in enumerate(DURATIONS_S)]
    feats, lengths = pad_features([segment_features(lm.frontend, c) for c in clips], 560)
    seg_ms = [len(c) // 16 for c in clips]
    results = decode_features(lm, feats, lengths, seg_ms)
    assert len(results) == len(clips) and all(r.ok for r in results)
    assert sum(len(r.tokens) for r in results) >= 2 * len(results)
    for r, ms in zip(results, seg_ms):
        # Invariant: half precision changes which tokens, never the shape of a result.
        assert len(r.tokens) == len(r.token_start_ms) == len(r.token_end_ms)
        assert all(0 <= s <= e <= ms for s, e in zip(r.token_start_ms, r.token_end_ms))
        assert list(r.token_start_ms) == sorted(r.token_start_ms)


def test_cpu_honours_dtype_and_says_it_is_slow(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vadpack.asr"):
        assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
        assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    assert "slow" in caplog.text and "float16" in caplog.text
    caplog.clear()
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32
    assert not caplog.text


def _tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture()
def tf32_on():
    saved = _tf32_flags()
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_float32_on_cuda_decodes_without_tf32_and_restores_it(tf32_on: None) -> None:
    # The flags are process globals that exist without a GPU, so the scoping is checked here; a CUDA
    # device object needs no GPU either.
    cuda = torch.device("cuda", 0)
    with exact_float32(cuda, torch.float32):
        assert _tf32_flags() == (False, False)
    assert _tf32_flags() == (True, True)
    with pytest.raises(RuntimeError), exact_float32(cuda, torch.float32):
        raise RuntimeError("a failed decode restores the flags too")
    assert _tf32_flags() == (True, True)


@pytest.mark.parametrize(("device", "dtype"), [("cuda", torch.bfloat16), ("cuda", torch.float16),
                                               ("cpu", torch.float32)])
def test_tf32_left_alone_elsewhere(tf32_on: None, device: str, dtype: torch.dtype) -> None:
    with exact_float32(torch.device(device), dtype):
        assert _tf32_flags() == (True, True)
