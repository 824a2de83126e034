"""Synthetic speech-like audio and a PCM cache built from it, for the asr tests.

The signal is a run of "syllables": harmonic series with a gliding pitch, shaped by two formant-like
resonances that move from syllable to syllable, under a smooth envelope, separated by short pauses,
with fricative noise bursts and a low noise floor. A random Paraformer reacts to it like to speech:
the CIF weights change with the spectrum, so tokens fire at varying rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from vadpack.core.cache import PCM_DTYPE, SAMPLE_RATE, pcm_path


def speech_like(duration_s: float, seed: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``duration_s`` seconds of speech-like float32 audio in [-1, 1)."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * rate)
    out = np.zeros(n, dtype=np.float64)
    pos = int(rng.integers(0, rate // 10))
    while pos < n:
        length = int(rng.uniform(0.08, 0.32) * rate)
        seg = _syllable(length, rng, rate) if rng.random() > 0.15 else _fricative(length // 2, rng)
        end = min(n, pos + len(seg))
        out[pos:end] += seg[: end - pos]
        pos = end + int(rng.uniform(0.02, 0.35 if rng.random() > 0.1 else 0.8) * rate)
    out += rng.normal(0.0, 0.002, n)
    return np.clip(out, -1.0, 0.999).astype(np.float32)


def _syllable(length: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    t = np.arange(length) / rate
    f0 = rng.uniform(90, 240) * (1 + rng.uniform(-0.25, 0.25) * t / max(t[-1], 1e-3))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    f1, f2 = rng.uniform(300, 900), rng.uniform(900, 2600)
    sig = np.zeros(length)
    for h in range(1, 30):
        freq = f0 * h
        gain = np.exp(-((freq - f1) / 180) ** 2) + 0.6 * np.exp(-((freq - f2) / 260) ** 2) + 0.02
        sig += gain * np.sin(h * phase) * (freq < rate / 2)
    env = np.sin(np.pi * np.arange(length) / length) ** 0.6
    return sig * env * rng.uniform(0.04, 0.12)


def _fricative(length: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, 1.0, length)
    hp = np.diff(noise, prepend=0.0)  # crude high-pass: fricatives are mostly high frequencies
    return hp * np.hanning(length) * rng.uniform(0.01, 0.04)


def write_pcm(cache_dir: Path, recording_id: str, audio: np.ndarray) -> Path:
    """Write float audio as a PCM cache file (int16, as the vad stage writes it)."""
    path = pcm_path(cache_dir, recording_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(PCM_DTYPE)
    pcm.tofile(path)
    return path
