"""Soft edges: the frame levels they read, and how speech runs grow into soft frames."""

from __future__ import annotations

import numpy as np
import pytest
from vadpack.vad.config import VadConfig
from vadpack.vad.edges import grow_runs, grow_soft_edges, runs_mask, soft_frames
from vadpack.vad.frames import SILENCE_DB, WebrtcFrames, classify_webrtc, frame_levels_db
from vadpack.vad.types import FrameTrack

from tests.support.synthetic import speech_burst

SR = 16000


def flags(pattern: str) -> np.ndarray:
    return np.array([c == "#" for c in pattern], dtype=bool)


def shown(mask: np.ndarray) -> str:
    return "".join("#" if x else "." for x in mask)


# ---- frame levels -------------------------------------------------------------------------------


def test_dc_is_not_sound_and_pre_emphasis_favours_high_frequencies() -> None:
    t = np.arange(480) / SR
    dc = np.full(480, 16384, np.int16)
    low = np.rint(8000 * np.sin(2 * np.pi * 100 * t)).astype(np.int16)
    high = np.rint(8000 * np.sin(2 * np.pi * 6000 * t)).astype(np.int16)
    energy, ac, emphasis = frame_levels_db(np.concatenate([dc, low, high]), 480)
    assert energy[0] == pytest.approx(-6.02, abs=0.01)  # half scale
    assert ac[0] == SILENCE_DB and emphasis[0] == SILENCE_DB  # a DC offset is silence to both
    assert ac[1] == pytest.approx(energy[1], abs=0.1) and ac[2] == pytest.approx(energy[2], abs=0.1)
    # First difference: |2 sin(pi f / fs)|, so -24 dB at 100 Hz and +5 dB at 6 kHz.
    assert emphasis[1] - energy[1] == pytest.approx(20 * np.log10(2 * np.sin(np.pi * 100 / SR)), abs=0.3)
    assert emphasis[2] - energy[2] == pytest.approx(20 * np.log10(2 * np.sin(np.pi * 6000 / SR)), abs=0.3)


def test_streamed_levels_equal_one_call_including_the_partial_frame() -> None:
    pcm = np.rint(speech_burst(np.random.default_rng(1), 1.3) * 32767).astype(np.int16)[:20000]
    whole = classify_webrtc(pcm, 2, 30)
    frames = WebrtcFrames(2, 30)
    for a, b in [(0, 7), (7, 9999), (9999, len(pcm))]:
        frames.feed(pcm[a:b])
    streamed = frames.finish()
    assert streamed.n_frames == len(streamed.ac_energy_db) == len(streamed.emphasis_energy_db) == 42
    np.testing.assert_array_equal(streamed.ac_energy_db, whole.ac_energy_db)
    np.testing.assert_array_equal(streamed.emphasis_energy_db, whole.emphasis_energy_db)


# ---- growing runs -------------------------------------------------------------------------------


def test_runs_grow_over_touching_soft_frames_up_to_the_limit() -> None:
    speech = flags("......####........###....")
    soft = flags("...##########.#.....#####")
    # Left run: 3 soft frames before and after it, the limit keeps 2 of each; the soft frame at 14
    # touches no run. Right run: none before, 4 after, 2 kept.
    assert shown(grow_runs(speech, soft, 2)) == "....########......#####.."
    assert shown(grow_runs(speech, soft, 0)) == shown(speech)
    assert not grow_runs(np.zeros(6, bool), np.ones(6, bool), 3).any()  # soft alone never starts speech


def test_runs_mask_handles_touching_and_overlapping_runs() -> None:
    assert shown(runs_mask(np.array([1, 3, 4]), np.array([4, 6, 5]), 8)) == ".#####.."


def test_soft_frames_compare_each_level_with_its_own_background() -> None:
    quiet = np.full(20, -70.0, np.float32)
    ac, emphasis = quiet.copy(), quiet.copy() - 20  # pre-emphasis puts this background 20 dB lower
    ac[5] = -55.0  # 15 dB above its background: soft
    emphasis[9] = -80.0  # 10 dB above its background: not soft at 12 dB
    emphasis[12] = -75.0  # 15 dB above: soft, although far below ac's background
    assert np.flatnonzero(soft_frames((ac, emphasis), 12.0)).tolist() == [5, 12]


def track_with_edges(pattern: str, soft_pattern: str) -> FrameTrack:
    """30 ms frames: ``#`` speech; soft frames at -40 dB in both levels over a -80 dB background."""
    soft = np.where(flags(soft_pattern), -40.0, -80.0).astype(np.float32)
    energy = np.where(flags(pattern), -20.0, -60.0).astype(np.float32)
    return FrameTrack(flags(pattern), energy, 480, len(pattern) * 480, soft, soft.copy())


def test_a_click_is_not_grown_into_speech() -> None:
    # 2 frames of speech (0.06 s) with soft frames around: min_speech_s drops it before any growth.
    track = track_with_edges(".........##................", ".....##########............")
    cfg = VadConfig(min_speech_s=0.3, soft_edge_s=0.3)
    assert not grow_soft_edges(track, np.ones(track.n_frames, bool), cfg).speech.any()


def test_growth_stops_at_vetoed_frames_and_can_be_turned_off() -> None:
    speech = "..........############....................."
    soft = "......................########............."
    track = track_with_edges(speech, soft)
    keep = np.ones(track.n_frames, bool)
    keep[25:] = False  # a gate vetoes these: they are not soft, whatever their level
    cfg = VadConfig(soft_edge_s=0.3)
    assert shown(grow_soft_edges(track, keep, cfg).speech) == "..........###############.................."
    assert grow_soft_edges(track, keep, VadConfig(soft_edge_db=0)) is track
    hand_made = FrameTrack(track.speech, track.energy_db, 480, track.n_samples)  # no levels measured
    assert grow_soft_edges(hand_made, keep, cfg) is hand_made


@pytest.mark.parametrize("key, value", [("soft_edge_db", -1.0), ("soft_edge_db", 61.0), ("soft_edge_s", 1.5)])
def test_soft_edge_settings_are_checked(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"vad.{key}"):
        VadConfig(**{key: value})
