"""Frame flags -> segments: the state machine, padding, length cap and merging."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from vadpack.vad.config import VadConfig
from vadpack.vad.segmenter import SpeechStateMachine, pad_regions, segments_from_track
from vadpack.vad.split import cap_length, merge_short
from vadpack.vad.types import FrameTrack

SR = 16000


def track_of(flags: str | list[bool], frame_samples: int = 480, n_samples: int | None = None,
             energy: np.ndarray | None = None) -> FrameTrack:
    """A FrameTrack from a string like ``"..###..#"`` (``#`` = speech)."""
    speech = np.array([c == "#" for c in flags] if isinstance(flags, str) else flags, dtype=bool)
    if energy is None:
        energy = np.where(speech, -20.0, -60.0).astype(np.float32)
    n = len(speech) * frame_samples if n_samples is None else n_samples
    return FrameTrack(speech, energy, frame_samples, n)


def reference_regions(flags: np.ndarray, min_speech: int, min_silence: int) -> list[tuple[int, int]]:
    """The TRIGGERED/NOTTRIGGERED state machine run frame by frame, as the vectorised one must behave."""
    regions, start, last = [], None, -1
    for i, is_speech in enumerate(flags):
        if is_speech:
            start = i if start is None else start
            last = i
        elif start is not None and i - last >= min_silence:
            regions.append((start, last + 1))
            start = None
    if start is not None:
        regions.append((start, last + 1))
    return [(a, b) for a, b in regions if b - a >= max(1, min_speech)]


# ---- state machine ----------------------------------------------------------------------------


def test_short_gaps_are_bridged_and_long_ones_close_the_region() -> None:
    flags = np.array([c == "#" for c in "###...###......##"])
    starts, ends = SpeechStateMachine(1, 4).regions(flags)
    assert list(zip(starts, ends)) == [(0, 9), (15, 17)]
    starts, ends = SpeechStateMachine(1, 3).regions(flags)
    assert list(zip(starts, ends)) == [(0, 3), (6, 9), (15, 17)]


def test_regions_shorter_than_min_speech_are_dropped() -> None:
    flags = np.array([c == "#" for c in "#.....####.....##"])
    starts, ends = SpeechStateMachine(3, 2).regions(flags)
    assert list(zip(starts, ends)) == [(6, 10)]


def test_region_open_at_the_end_is_kept() -> None:
    # Invariant: the last frame is not dropped (py-webrtcvad's example loses it).
    starts, ends = SpeechStateMachine(1, 1).regions(np.array([False, False, True]))
    assert list(zip(starts, ends)) == [(2, 3)]


@settings(max_examples=200, deadline=None)
@given(flags=st.lists(st.booleans(), max_size=300), min_speech=st.integers(0, 12), min_silence=st.integers(0, 12))
def test_vectorised_state_machine_equals_frame_by_frame(flags, min_speech, min_silence) -> None:
    flags = np.array(flags, dtype=bool)
    starts, ends = SpeechStateMachine(min_speech, min_silence).regions(flags)
    assert list(zip(starts.tolist(), ends.tolist())) == reference_regions(flags, min_speech, max(1, min_silence))


# ---- padding ----------------------------------------------------------------------------------


def test_padding_stops_at_the_file_ends_and_splits_close_gaps() -> None:
    padded = pad_regions(np.array([100, 1000, 1300]), np.array([900, 1200, 1990]), pad=200, n_samples=2000)
    # first: clamped at 0; 900..1000 gap split in half; 1200..1300 split in half; end clamped at 2000
    assert padded.tolist() == [[0, 950], [950, 1250], [1250, 2000]]


def test_last_partial_frame_is_covered_to_the_last_sample() -> None:
    track = track_of(".....#####", frame_samples=480, n_samples=10 * 480 - 100)
    cfg = VadConfig(min_speech_s=0.0, pad_s=0.5)
    # Speech from frame 5 to the partial frame 9, which ends at sample 4700; padding clamps at 0.
    assert segments_from_track(track, cfg) == [(0, 4700)]


# ---- length cap -------------------------------------------------------------------------------


def test_long_segment_is_cut_in_the_middle_of_its_longest_pause() -> None:
    # 50 s of speech at 30 ms frames with pauses of 3, 8 and 2 frames; max 30 s.
    frames = ["#"] * 1667
    for at, length in ((300, 3), (900, 8), (1400, 2)):
        frames[at: at + length] = "." * length
    track = track_of("".join(frames))
    pieces = cap_length([(0, track.n_samples)], track, 30 * SR)
    assert pieces == [(0, (900 + 4) * 480), ((900 + 4) * 480, track.n_samples)]


def test_cut_recurses_until_every_piece_fits() -> None:
    frames = ["#"] * 4000  # 120 s, a pause of 2 frames every 10 s
    for at in range(333, 4000, 333):
        frames[at: at + 2] = ".."
    track = track_of("".join(frames))
    pieces = cap_length([(0, track.n_samples)], track, 30 * SR)
    assert all(b - a <= 30 * SR for a, b in pieces)
    assert pieces[0][0] == 0 and pieces[-1][1] == track.n_samples
    assert all(p[1] == q[0] for p, q in itertools.pairwise(pieces))  # touching: no audio lost
    pause_middles = {(at + 1) * 480 for at in range(333, 4000, 333)}
    assert {b for _, b in pieces[:-1]} <= pause_middles


def test_without_a_pause_the_cut_is_at_the_quietest_100_ms() -> None:
    n_frames = 1500  # 45 s of speech, no pause; frames 1000-1003 are much quieter
    energy = np.full(n_frames, -20.0, dtype=np.float32)
    energy[1000:1004] = -50.0
    track = track_of("#" * n_frames, energy=energy)
    (_, cut), (cut2, _) = cap_length([(0, track.n_samples)], track, 40 * SR)
    assert cut == cut2
    assert 1000 * 480 <= cut <= 1004 * 480


def test_merge_joins_neighbours_up_to_the_limit() -> None:
    pieces = [(0, 16000), (20000, 40000), (48000, 60000), (200000, 210000)]
    assert merge_short(pieces, 60000) == [(0, 60000), (200000, 210000)]
    assert merge_short(pieces, 0) == pieces


# ---- invariants on random input -----------------------------------------------------------------


@st.composite
def tracks_and_configs(draw):
    frame_samples = draw(st.sampled_from([160, 320, 480]))
    runs = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 400)), max_size=40))
    flags = [value for value, length in runs for _ in range(length)]
    n_frames = len(flags)
    short_by = draw(st.integers(0, frame_samples - 1)) if n_frames else 0
    # Energies only steer where a pause-less segment is cut; random ones from a drawn seed will do.
    energy = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(-100, 0, n_frames).astype(np.float32)
    track = FrameTrack(np.array(flags, dtype=bool), energy, frame_samples, n_frames * frame_samples - short_by)
    max_segment_s = draw(st.floats(1, 12))
    cfg = VadConfig(
        min_speech_s=draw(st.floats(0, 1)), min_silence_s=draw(st.floats(0, 2)), pad_s=draw(st.floats(0, 0.5)),
        max_segment_s=max_segment_s, merge_up_to_s=draw(st.sampled_from([0.0, max_segment_s / 2, max_segment_s])),
    )
    return track, cfg


@settings(max_examples=150, deadline=None)
@given(tracks_and_configs())
def test_segment_invariants(case) -> None:
    track, cfg = case
    segments = segments_from_track(track, cfg)
    max_samples = int(cfg.max_segment_s * SR)
    for a, b in segments:
        assert 0 <= a < b <= track.n_samples  # inside the file, never empty
        assert b - a <= max_samples  # Invariant: every segment fits the length cap
    assert all(p[1] <= q[0] for p, q in itertools.pairwise(segments))  # sorted, non-overlapping
    # Invariant: every speech frame is covered unless its region was dropped by min_speech.
    covered = np.zeros(track.n_samples, dtype=bool)
    for a, b in segments:
        covered[a:b] = True
    f = track.frame_samples
    min_speech = int(np.ceil(cfg.min_speech_s * SR / f - 1e-9))
    min_silence = max(1, int(np.ceil(cfg.min_silence_s * SR / f - 1e-9)))
    for start, end in reference_regions(track.speech, min_speech, min_silence):
        assert covered[start * f: min(end * f, track.n_samples)].all()
    # Invariant: segments hold no audio farther than pad_s from a kept region (nothing invented).
    near = np.zeros(track.n_samples, dtype=bool)
    pad = round(cfg.pad_s * SR)
    for start, end in reference_regions(track.speech, min_speech, min_silence):
        near[max(0, start * f - pad): end * f + pad] = True
    if cfg.merge_up_to_s == 0:
        assert not (covered & ~near).any()
