"""Soft edges: speech runs grow into the quiet sound at their ends that webrtcvad does not hear.

webrtcvad decimates 16 kHz input to 8 kHz and models six bands between 80 Hz and 4 kHz, against a
background model that adapts. So it misses the soft edges of words: a word-final fricative (most of
an /s/ lies above 4 kHz) and soft, low voicing at the start or end of a phrase. Its speech then stops
early or starts late, and the pause between two words measures longer than it is. Once that pause
passes ``min_silence_s`` the utterance is split, and what lies between the pads is lost. In
michaelandsickmichael.wav the /s/ of "corpus" (35.58-35.70 s, 4-8 kHz) made a 0.90 s pause measure
1.05 s; in the AMI excerpt dev00 soft voicing at 60-250 Hz (3.84-3.93 s, 4.62-4.86 s) made a 0.66 s
pause measure 1.05 s.

The remedy is a second, lower threshold next to the classifier, as silero-vad's ``neg_threshold`` and
the classic energy endpointers have: a frame that no gate vetoes and that stands ``soft_edge_db`` above
the recording's background in either of two levels extends a neighbouring speech run, by at most
``soft_edge_s`` on each side. The two levels cover webrtcvad's two blind spots: the power without DC
(soft low voicing; a DC offset or a breath on the microphone does not count) and the pre-emphasised
power (fricatives). A soft frame never starts speech by itself: sound away from speech, and a click
that the onset hysteresis drops, stay non-speech.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from vadpack.vad.config import VadConfig
from vadpack.vad.segmenter import SpeechStateMachine, frames_for, speech_runs
from vadpack.vad.types import FrameTrack

# The background of a recording: the level that its quietest tenth of frames stays under.
FLOOR_PERCENTILE = 10.0


def grow_soft_edges(track: FrameTrack, keep: np.ndarray, cfg: VadConfig) -> FrameTrack:
    """Grow each speech run of a gated ``track`` into the soft frames next to it.

    Args:
        track: the classifier's frames after :func:`vad.gates.apply_gates`.
        keep: the frames no gate vetoes (:func:`vad.gates.gate_mask`); a vetoed frame is never soft.
        cfg: ``soft_edge_db`` (0 turns this step off), ``soft_edge_s``, and the hysteresis settings.

    Returns:
        ``track`` with more speech frames, or ``track`` itself when the step is off or the track
        carries no levels to judge by.
    """
    levels = (track.ac_energy_db, track.emphasis_energy_db)
    if cfg.soft_edge_db <= 0 or cfg.soft_edge_s <= 0 or any(x is None for x in levels) or not track.speech.any():
        return track
    soft = soft_frames(levels, cfg.soft_edge_db) & keep
    speech = surviving_speech(track, cfg)
    grown = grow_runs(speech, soft, frames_for(cfg.soft_edge_s, track.frame_samples))
    return dataclasses.replace(track, speech=grown)


def soft_frames(levels: tuple[np.ndarray, ...], margin_db: float) -> np.ndarray:
    """Frames at least ``margin_db`` above the recording's background in any of ``levels``.

    Each level is compared with its own background: pre-emphasis lowers the power of a hum-heavy
    background far more than that of a fricative.
    """
    soft = np.zeros(len(levels[0]), dtype=bool)
    for level in levels:
        soft |= level >= np.percentile(level, FLOOR_PERCENTILE) + margin_db
    return soft


def surviving_speech(track: FrameTrack, cfg: VadConfig) -> np.ndarray:
    """The speech frames of the regions that the state machine keeps.

    The onset hysteresis judges the classifier's own evidence: a click shorter than ``min_speech_s``
    must not grow past it on soft frames and come back as speech.
    """
    machine = SpeechStateMachine(frames_for(cfg.min_speech_s, track.frame_samples),
                                 frames_for(cfg.min_silence_s, track.frame_samples))
    return track.speech & runs_mask(*machine.regions(track.speech), track.n_frames)


def grow_runs(speech: np.ndarray, soft: np.ndarray, max_frames: int) -> np.ndarray:
    """Extend each run of ``speech`` over the ``soft`` frames touching it, at most ``max_frames`` a side."""
    starts, ends = speech_runs(speech)
    if not len(starts) or max_frames <= 0:
        return speech
    # Each speech run lies inside exactly one run of speech-or-soft frames: that one bounds its growth.
    outer_starts, outer_ends = speech_runs(speech | soft)
    outer = np.searchsorted(outer_starts, starts, side="right") - 1
    grown_starts = np.maximum(outer_starts[outer], starts - max_frames)
    grown_ends = np.minimum(outer_ends[outer], ends + max_frames)
    return runs_mask(grown_starts, grown_ends, len(speech))


def runs_mask(starts: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """A bool mask of length ``n``, True inside every ``[starts[i], ends[i])`` (runs may overlap)."""
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    return np.cumsum(delta[:-1]) > 0
