"""Energy gates that veto frames the classifier called speech.

webrtcvad judges each frame on its spectrum alone, so steady background (a fan, mains hum, a music
bed, studio noise between turns) often passes as speech. Two cheap, gain-independent checks on the
per-frame energy take most of it back without touching real speech:

- steady noise: speech is modulated at the syllable rate (about 4 Hz), so its frame energy swings by
  many dB within a fraction of a second. A stretch whose energy stays within ``steady_noise_db``
  (standard deviation over ``steady_window_s``) is not speech.
- level: frames far below the recording's own loud level (its 95th percentile frame energy) are
  background, whatever the absolute gain of the recording.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from vadpack.core.cache import SAMPLE_RATE
from vadpack.vad.config import VadConfig
from vadpack.vad.types import FrameTrack

LOUD_PERCENTILE = 95.0


def apply_gates(track: FrameTrack, cfg: VadConfig) -> FrameTrack:
    """Return ``track`` with speech flags cleared where a gate says the frame is not speech."""
    if not track.n_frames:
        return track
    return dataclasses.replace(track, speech=track.speech & gate_mask(track, cfg))


def gate_mask(track: FrameTrack, cfg: VadConfig) -> np.ndarray:
    """True for each frame that no gate vetoes (whatever the classifier said about it)."""
    keep = np.ones(track.n_frames, dtype=bool)
    if not track.n_frames:
        return keep
    if cfg.steady_noise_db > 0:
        window = max(1, round(cfg.steady_window_s * SAMPLE_RATE / track.frame_samples))
        keep &= moving_std(track.energy_db, window) >= cfg.steady_noise_db
    if cfg.level_gate_db > 0:
        loud = float(np.percentile(track.energy_db, LOUD_PERCENTILE))
        keep &= track.energy_db >= loud - cfg.level_gate_db
    return keep


def moving_std(x: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation of ``x`` over a centred window of ``window`` samples (edges mirrored).

    Computed from running sums in float64, O(n) whatever the window.
    """
    if window <= 1 or len(x) == 0:
        return np.zeros(len(x), dtype=np.float32)
    left = window // 2
    # Mirror the ends: repeating the edge value would fake a steady stretch at the file's start and end.
    mode = "reflect" if len(x) > window else "edge"
    padded = np.pad(x.astype(np.float64), (left, window - 1 - left), mode=mode)
    # Centre on the mean first so that the sums of squares do not lose precision.
    padded -= padded.mean()
    s1 = np.concatenate([[0.0], np.cumsum(padded)])
    s2 = np.concatenate([[0.0], np.cumsum(padded * padded)])
    mean = (s1[window:] - s1[:-window]) / window
    var = (s2[window:] - s2[:-window]) / window - mean * mean
    return np.sqrt(np.maximum(var, 0.0)).astype(np.float32)
