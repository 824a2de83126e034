"""Configuration of the vad stage."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.configtools import check_choice, check_range

BACKENDS = ("webrtc", "silero", "fsmn")


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Options of the vad stage.

    Attributes:
        backend: frame classifier: ``webrtc`` (default), ``silero`` (extra ``silero``), or ``fsmn``
            (FunASR fsmn-vad; needs ``fsmn_model``, a local model folder).
        aggressiveness: webrtcvad mode, 0 (keeps most) to 3 (drops most).
        frame_ms: webrtcvad frame length: 10, 20 or 30 ms.
        min_speech_s: speech regions shorter than this are dropped as clicks.
        min_silence_s: gaps shorter than this are bridged.
        pad_s: padding added on both sides of each region (never overlapping a neighbour or the file ends).
        max_segment_s: segments longer than this are split at the quietest pause inside them.
        merge_up_to_s: adjacent short segments are merged up to this length; 0 turns merging off.
        workers: worker processes; 0 means one per CPU core.
        fsmn_model: local fsmn-vad model folder for ``backend: fsmn``.
    """

    backend: str = "webrtc"
    aggressiveness: int = 2
    frame_ms: int = 30
    min_speech_s: float = 0.1
    min_silence_s: float = 0.3
    pad_s: float = 0.2
    max_segment_s: float = 30.0
    merge_up_to_s: float = 0.0
    workers: int = 0
    fsmn_model: str | None = None

    def __post_init__(self) -> None:
        check_choice("vad.backend", self.backend, BACKENDS)
        check_choice("vad.aggressiveness", self.aggressiveness, (0, 1, 2, 3))
        check_choice("vad.frame_ms", self.frame_ms, (10, 20, 30))
        check_range("vad.min_speech_s", self.min_speech_s, 0, 10)
        check_range("vad.min_silence_s", self.min_silence_s, 0, 10)
        check_range("vad.pad_s", self.pad_s, 0, 5)
        check_range("vad.max_segment_s", self.max_segment_s, 1, 600)
        check_range("vad.merge_up_to_s", self.merge_up_to_s, 0, self.max_segment_s)
        check_range("vad.workers", self.workers, 0, 1024)
        if self.backend == "fsmn" and not self.fsmn_model:
            raise ValueError("vad.backend = 'fsmn' needs vad.fsmn_model: a local fsmn-vad model folder")

    @property
    def n_workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)
