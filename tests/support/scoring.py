"""Scoring a VAD against ground truth on a 10 ms grid, and the naive baseline it must beat."""

from __future__ import annotations

import numpy as np
from vadpack.vad.frames import classify_webrtc
from vadpack.vad.segmenter import speech_runs


def grid_10ms(regions_s, n_cells: int) -> np.ndarray:
    """10 ms cells whose centre lies inside one of ``regions_s`` (pairs of seconds)."""
    centres = (np.arange(n_cells) + 0.5) / 100
    out = np.zeros(n_cells, dtype=bool)
    for a, b in regions_s:
        out |= (centres >= a) & (centres < b)
    return out


def naive_regions(pcm: np.ndarray) -> list[tuple[float, float]]:
    """The baseline: webrtcvad mode 2 on 30 ms frames, every speech frame padded by 0.3 s."""
    track = classify_webrtc(pcm, 2, 30)
    starts, ends = speech_runs(track.speech)
    return [(a * 0.03 - 0.3, b * 0.03 + 0.3) for a, b in zip(starts, ends)]
