"""webrtcvad frame classification and the energy gates."""

from __future__ import annotations

import numpy as np
import pytest
from vadpack.vad.config import VadConfig
from vadpack.vad.frames import SILENCE_DB, WebrtcFrames, classify_webrtc, frame_energy_db
from vadpack.vad.gates import apply_gates, moving_std
from vadpack.vad.stage import segment_recording
from vadpack.vad.types import FrameTrack

from tests.support.synthetic import speech_burst

SR = 16000


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    return np.rint(speech_burst(np.random.default_rng(seed), seconds) * 32767).astype(np.int16)


def test_streamed_blocks_give_the_same_frames_as_one_call() -> None:
    pcm = np.concatenate([np.zeros(7000, np.int16), speech(2.0), np.zeros(5123, np.int16)])
    whole = classify_webrtc(pcm, 2, 30)
    frames = WebrtcFrames(2, 30)
    for a, b in [(0, 1), (1, 4799), (4799, 20000), (20000, len(pcm))]:
        frames.feed(pcm[a:b])
    streamed = frames.finish()
    np.testing.assert_array_equal(streamed.speech, whole.speech)
    np.testing.assert_array_equal(streamed.energy_db, whole.energy_db)
    assert streamed.n_samples == len(pcm)


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_last_partial_frame_is_classified(frame_ms: int) -> None:
    # Speech right up to the end, which falls 2/3 into a frame: that frame must be there and speech.
    pcm = np.concatenate([np.zeros(SR, np.int16), speech(1.5)])
    frame = SR * frame_ms // 1000
    pcm = pcm[: (len(pcm) // frame) * frame + frame * 2 // 3]
    track = classify_webrtc(pcm, 2, frame_ms)
    assert track.n_frames == -(-len(pcm) // frame)
    assert track.speech[-1]
    segments = segment_recording(pcm, VadConfig(frame_ms=frame_ms))
    assert segments[-1][1] == len(pcm)


def test_silence_has_no_speech_and_no_segments() -> None:
    pcm = np.zeros(5 * SR, np.int16)
    assert not classify_webrtc(pcm, 2, 30).speech.any()
    assert segment_recording(pcm, VadConfig()) == []
    assert segment_recording(np.zeros(0, np.int16), VadConfig()) == []


def test_frame_energy_in_dbfs() -> None:
    full_scale_square = np.full(480, 32767, np.int16)
    assert frame_energy_db(full_scale_square, 480)[0] == pytest.approx(0.0, abs=0.01)
    assert frame_energy_db(np.zeros(960, np.int16), 480).tolist() == [SILENCE_DB, SILENCE_DB]


def test_moving_std_matches_a_direct_computation() -> None:
    x = np.random.default_rng(3).normal(size=200).astype(np.float32) * 10 - 40
    window = 7
    padded = np.pad(x, (3, 3), mode="reflect")
    expected = [padded[i: i + window].std() for i in range(len(x))]
    np.testing.assert_allclose(moving_std(x, window), expected, rtol=1e-4, atol=1e-4)


def test_steady_noise_is_gated_and_modulated_speech_is_not() -> None:
    n = 200
    speech_flags = np.ones(n, dtype=bool)
    # First half: a steady hum at -30 dB; second half: syllable-rate swings of +-10 dB.
    energy = np.concatenate([np.full(n // 2, -30.0), -30 + 10 * np.sin(np.arange(n // 2) * 2 * np.pi / 8)])
    track = FrameTrack(speech_flags, energy.astype(np.float32), 480, n * 480)
    gated = apply_gates(track, VadConfig(level_gate_db=0))
    assert not gated.speech[: n // 2 - 15].any()
    assert gated.speech[n // 2 + 15:].all()
    assert apply_gates(track, VadConfig(steady_noise_db=0, level_gate_db=0)).speech.all()


def test_level_gate_is_relative_to_the_recording() -> None:
    energy = np.array([-20.0] * 50 + [-70.0] * 10, dtype=np.float32)
    track = FrameTrack(np.ones(60, bool), energy, 480, 60 * 480)
    cfg = VadConfig(steady_noise_db=0, level_gate_db=40)
    assert apply_gates(track, cfg).speech.tolist() == [True] * 50 + [False] * 10
    # 30 dB quieter overall: same decision, the gate follows the recording's own level.
    quiet = FrameTrack(track.speech, energy - 30, 480, 60 * 480)
    assert apply_gates(quiet, cfg).speech.tolist() == [True] * 50 + [False] * 10
