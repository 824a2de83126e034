"""The decoded-audio cache: 16 kHz mono int16 PCM, one raw file per recording, read by memmap.

Raw little-endian int16 with no header, so a segment is a slice of a memmap: the asr stage reads any
segment by random access and a file is never decoded twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
PCM_DTYPE = np.dtype("<i2")


def pcm_path(cache_dir: Path, recording_id: str) -> Path:
    """The cache file of one recording (recording ids are file-name safe by construction)."""
    return Path(cache_dir) / f"{recording_id}.s16"


def open_pcm(path: Path) -> np.ndarray:
    """A read-only memmap of a cached recording (an empty array for an empty file)."""
    path = Path(path)
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=PCM_DTYPE)
    return np.memmap(path, dtype=PCM_DTYPE, mode="r")


def read_segment(path: Path, start_sample: int, end_sample: int) -> np.ndarray:
    """Samples [start_sample, end_sample) of a cached recording, as float32 in [-1, 1)."""
    pcm = open_pcm(path)
    if not (0 <= start_sample <= end_sample <= len(pcm)):
        raise ValueError(f"{path}: segment [{start_sample}, {end_sample}) is outside 0..{len(pcm)}")
    return np.asarray(pcm[start_sample:end_sample], dtype=np.float32) / 32768.0
