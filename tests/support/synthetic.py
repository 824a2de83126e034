"""Synthetic meetings with exactly known speech regions, for tests and benchmarks.

No TTS is needed: a "word" is a burst of voiced sound (a sawtooth on a wandering pitch,
shaped by three formants and a syllable-rate envelope, with some breath noise), which webrtcvad
hears as speech. Turns are runs of such bursts separated by short pauses; some turns are monologues
longer than 30 s, which the length cap has to split. Pauses hold only the background noise, so
the true speech regions are known to the sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vadpack.core.cache import SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class SyntheticMeeting:
    """A generated recording and its ground truth.

    Attributes:
        pcm: int16 samples at 16 kHz.
        speech: the true speech regions ``(start_sample, end_sample)``, sorted and disjoint.
    """

    pcm: np.ndarray
    speech: tuple[tuple[int, int], ...]

    def in_pause(self, sample: int) -> bool:
        """True when ``sample`` lies outside every speech region."""
        starts = np.fromiter((a for a, _ in self.speech), dtype=np.int64, count=len(self.speech))
        i = int(np.searchsorted(starts, sample, side="right")) - 1
        return i < 0 or sample >= self.speech[i][1]


def speech_burst(rng: np.random.Generator, duration_s: float) -> np.ndarray:
    """One speech-like burst (a word or short phrase), float64 with peak amplitude 0.2-0.6."""
    n = max(16, int(duration_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(95, 230) * np.linspace(1.05, 0.92, n)  # declination, as in a statement
    f0 *= 1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = (phase / np.pi) % 2.0 - 1.0  # a sawtooth: every harmonic of f0, like a glottal pulse train
    syllables = 0.55 + 0.45 * np.cos(2 * np.pi * rng.uniform(3.5, 6.0) * t + rng.uniform(0, 2 * np.pi))
    x = (voiced + 0.15 * rng.standard_normal(n)) * syllables
    n_fft = 1 << (n - 1).bit_length()  # a power of two: lengths with large prime factors are slow
    spectrum = np.fft.rfft(x, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    formants = ((rng.uniform(300, 850), 1.0), (rng.uniform(900, 2300), 0.6), (rng.uniform(2300, 3200), 0.3))
    envelope = 0.02 + sum(a / (1 + ((freqs - f) / 120.0) ** 2) for f, a in formants)
    x = np.fft.irfft(spectrum * envelope, n_fft)[:n]
    ramp = min(n // 4, int(0.02 * SAMPLE_RATE))  # 20 ms fades: no clicks at the burst edges
    x[:ramp] *= np.linspace(0, 1, ramp)
    x[n - ramp:] *= np.linspace(1, 0, ramp)
    return x / np.max(np.abs(x)) * rng.uniform(0.2, 0.6)


def synthetic_meeting(seed: int, n_turns: int = 10, monologue_every: int = 3,
                      noise_dbfs: float = -50.0) -> SyntheticMeeting:
    """A meeting of ``n_turns`` turns; every ``monologue_every``-th turn is a 35-80 s monologue.

    Words last 0.3-1.8 s with 0.15-0.5 s pauses between them; turns are 0.6-3 s apart; the
    background is white noise at ``noise_dbfs``.
    """
    rng = np.random.default_rng(seed)
    pieces, speech, pos = [], [], 0
    for turn in range(n_turns):
        gap = int(rng.uniform(0.6, 3.0) * SAMPLE_RATE)
        pieces.append(np.zeros(gap))
        pos += gap
        turn_s = rng.uniform(35, 80) if (turn + 1) % monologue_every == 0 else rng.uniform(2, 15)
        turn_end = pos + int(turn_s * SAMPLE_RATE)
        while pos < turn_end:
            word = speech_burst(rng, rng.uniform(0.3, 1.8))
            pause = np.zeros(int(rng.uniform(0.15, 0.5) * SAMPLE_RATE))
            pieces += [word, pause]
            speech.append((pos, pos + len(word)))
            pos += len(word) + len(pause)
    pieces.append(np.zeros(SAMPLE_RATE))
    x = np.concatenate(pieces)
    x += 10 ** (noise_dbfs / 20) * rng.standard_normal(len(x))
    pcm = np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)
    return SyntheticMeeting(pcm, tuple(speech))
