"""Optional backends: silero (extra) and fsmn (local FunASR model folder)."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
from vadpack.vad import backends as vad_backends
from vadpack.vad.backends import FsmnFrames, SileroFrames
from vadpack.vad.config import VadConfig
from vadpack.vad.stage import segment_recording

from tests.support.synthetic import speech_burst

SR = 16000


def test_silero_backend_keeps_the_segment_contract() -> None:
    pytest.importorskip("silero_vad")
    burst = np.rint(speech_burst(np.random.default_rng(0), 1.5) * 32767).astype(np.int16)
    pcm = np.concatenate([np.zeros(SR, np.int16), burst, np.zeros(SR // 2 + 77, np.int16)])
    cfg = VadConfig(backend="silero", max_segment_s=1.0)
    segments = segment_recording(pcm, cfg)
    assert all(0 <= a < b <= len(pcm) and b - a <= SR for a, b in segments)
    assert all(p[1] <= q[0] for p, q in itertools.pairwise(segments))
    assert segment_recording(np.zeros(2 * SR, np.int16), cfg) == []


def test_silero_missing_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    monkeypatch.setattr(vad_backends, "_silero_model", vad_backends._silero_model.__wrapped__)
    with pytest.raises(ImportError, match=r"pip install 'vadpack\[silero\]'"):
        SileroFrames(0.5)


def test_fsmn_needs_a_model_folder(tmp_path) -> None:
    with pytest.raises(ValueError, match="vad.fsmn_model"):
        VadConfig(backend="fsmn")
    with pytest.raises(ValueError, match="is not a folder"):
        FsmnFrames(str(tmp_path / "missing"))
