"""Configuration of the vad stage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from vadpack.core.configtools import check_choice, check_fields, check_range

BACKENDS = ("webrtc", "silero", "fsmn")


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Options of the vad stage.

    Attributes:
        backend: frame classifier: ``webrtc`` (default), ``silero`` (extra ``silero``), or ``fsmn``
            (FunASR fsmn-vad; needs ``fsmn_model``, a local model folder).
        aggressiveness: webrtcvad mode, 0 (keeps most) to 3 (drops most).
        frame_ms: webrtcvad frame length: 10, 20 or 30 ms (30 is the fastest).
        min_speech_s: onset hysteresis: speech regions shorter than this (after bridging) are dropped
            as clicks.
        min_silence_s: offset hysteresis: a region ends only after this much non-speech; shorter gaps
            are bridged. One second, so that a 0.9 s pause inside an utterance is bridged: the
            human-labelled utterance at 26.7-39.5 s of michaelandsickmichael.wav holds 0.90 s of
            silence (a breath on the microphone aside).
        pad_s: padding added on both sides of each region (never overlapping a neighbour or the file ends).
            Short, because the soft-edge step already follows the sound at the ends of speech.
        soft_edge_db: frames that no gate vetoes and that stand this many dB above the recording's
            background (its 10th percentile) in power without DC or in pre-emphasised power extend a
            neighbouring speech run: webrtcvad does not hear word-final fricatives or soft low voicing
            (see :mod:`vad.edges`). 0 turns the step off.
        soft_edge_s: the most a speech run grows on each side on soft frames.
        steady_noise_db: frames whose energy varies by less than this (standard deviation in dB over
            ``steady_window_s``) are not speech: speech is modulated at the syllable rate, a fan, hum or
            a music bed is not. 0 turns the gate off.
        steady_window_s: the window of the steady-noise gate.
        level_gate_db: frames more than this many dB below the recording's loud level (95th
            percentile of frame energy) are not speech. Relative, so the recording's gain does not
            matter. 0 turns the gate off.
        silero_threshold: speech probability above which a silero frame counts as speech.
        max_segment_s: segments longer than this are split at the quietest pause inside them.
        merge_up_to_s: adjacent short segments are merged up to this length; 0 turns merging off.
        workers: worker processes; 0 means one per CPU core.
        fsmn_model: local fsmn-vad model folder for ``backend: fsmn``.
        keep_pcm: keep each recording's decoded 16 kHz audio in the cache (115.2 MB per audio hour,
            1.15 TB at 10,000 hours). ``true`` keeps it all; ``false`` deletes a recording's PCM once
            all its segments are transcribed (and labelled, with speakers on); ``auto`` (the default)
            keeps it all while the cache is at most ``pcm_limit_gb`` and, past that, drops the PCM of
            the finished recordings as ``false`` does. Dropped PCM is decoded again only if a later
            run needs the audio (another model, changed settings, ``--stage speakers``): 10-50
            s per audio hour on one core (bench/pcm_cache.py), against 0.1 s to read the cache.
        pcm_limit_gb: the cache size (GB, 10^9 bytes) past which ``keep_pcm: auto`` drops finished
            recordings' PCM, and past which the run summary says how large the cache is. 100 GB is
            about 870 audio hours.
    """

    # Change speed or disk use, never segments.
    SPEED_ONLY: ClassVar[tuple[str, ...]] = ("workers", "keep_pcm", "pcm_limit_gb")

    backend: str = "webrtc"
    # Defaults tuned on the human-labelled recordings of ../shared/data/real (bench/vad.py).
    aggressiveness: int = 2
    frame_ms: int = 30
    min_speech_s: float = 0.3
    min_silence_s: float = 1.0
    pad_s: float = 0.1
    soft_edge_db: float = 12.0
    soft_edge_s: float = 0.15
    steady_noise_db: float = 2.5
    steady_window_s: float = 0.75
    level_gate_db: float = 40.0
    silero_threshold: float = 0.5
    max_segment_s: float = 30.0
    merge_up_to_s: float = 0.0
    workers: int = 0
    fsmn_model: str | None = None
    keep_pcm: bool | str = "auto"
    pcm_limit_gb: float = 100.0

    def __post_init__(self) -> None:
        check_fields(self, "vad")
        check_choice("vad.backend", self.backend, BACKENDS)
        check_choice("vad.aggressiveness", self.aggressiveness, (0, 1, 2, 3))
        check_choice("vad.frame_ms", self.frame_ms, (10, 20, 30))
        check_range("vad.min_speech_s", self.min_speech_s, 0, 10)
        check_range("vad.min_silence_s", self.min_silence_s, 0, 10)
        check_range("vad.pad_s", self.pad_s, 0, 5)
        check_range("vad.max_segment_s", self.max_segment_s, 1, 600)
        check_range("vad.merge_up_to_s", self.merge_up_to_s, 0, self.max_segment_s)
        check_range("vad.steady_noise_db", self.steady_noise_db, 0, 20)
        check_range("vad.steady_window_s", self.steady_window_s, 0.1, 5)
        check_range("vad.level_gate_db", self.level_gate_db, 0, 120)
        check_range("vad.soft_edge_db", self.soft_edge_db, 0, 60)
        check_range("vad.soft_edge_s", self.soft_edge_s, 0, 1)
        check_range("vad.silero_threshold", self.silero_threshold, 0, 1)
        check_range("vad.workers", self.workers, 0, 1024)
        check_choice("vad.keep_pcm", self.keep_pcm, (True, False, "auto"))
        check_range("vad.pcm_limit_gb", self.pcm_limit_gb, 0, None)
        if self.backend == "fsmn" and not self.fsmn_model:
            raise ValueError("vad.backend = 'fsmn' needs vad.fsmn_model: a local fsmn-vad model folder")

    @property
    def n_workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)
