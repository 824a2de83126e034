"""Fixtures of the asr tests: the tiny random model, a synthetic archive in a PCM cache, and batches.

Everything is built here from numpy and FunASR's classes: no network, no pretrained weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from vadpack.asr.config import AsrConfig
from vadpack.asr.features import segment_features
from vadpack.core.cache import SAMPLE_RATE, pcm_path, read_segment
from vadpack.core.tables import BATCHES, VAD_SEGMENTS, to_table
from vadpack.core.types import Span
from vadpack.testkit.tiny import write_tiny_model

from tests.asr.synth import speech_like, write_pcm

# A realistic mix of segment lengths (seconds): mostly a few seconds, some very short, some at the
# 30 s cap, as the vad stage cuts meetings.
SEGMENT_S = (0.3, 0.45, 0.7, 1.1, 1.6, 2.2, 2.9, 3.4, 4.1, 4.8, 5.5, 6.3, 7.2, 8.0, 9.5, 11.0,
             12.5, 14.0, 16.5, 19.0, 22.0, 25.5, 28.0, 30.0)


@dataclass(frozen=True)
class Archive:
    """A synthetic archive: PCM cache + segments table."""

    cache_dir: Path
    segments: pa.Table

    @property
    def keys(self) -> list[tuple[str, int]]:
        seg = self.segments
        return list(zip(seg["recording_id"].to_pylist(), seg["segment_index"].to_pylist()))

    def spans(self) -> dict[tuple[str, int], Span]:
        """Each segment's span (the recording id doubles as the content id of its PCM file here)."""
        cols = [self.segments[c].to_pylist() for c in ("content_id", "start_sample", "end_sample")]
        return {k: Span(*span) for k, span in zip(self.keys, zip(*cols))}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return make_archive(tmp_path_factory.mktemp("pcm"), SEGMENT_S, n_recordings=3, seed=7)


@pytest.fixture(scope="module")
def audio(archive: Archive) -> dict[tuple[str, int], np.ndarray]:
    """Each archive segment's samples, read back from the PCM cache."""
    starts, ends = archive.segments["start_sample"].to_pylist(), archive.segments["end_sample"].to_pylist()
    return {k: read_segment(pcm_path(archive.cache_dir, k[0]), s, e)
            for k, s, e in zip(archive.keys, starts, ends)}


@pytest.fixture(scope="module")
def features(lm, audio: dict[tuple[str, int], np.ndarray]) -> dict[tuple[str, int], np.ndarray]:
    """Each segment's features by the frontend of the module's own ``lm`` fixture (its model)."""
    return {k: segment_features(lm.frontend, a) for k, a in audio.items()}


def make_archive(cache_dir: Path, segment_s: tuple[float, ...], n_recordings: int, seed: int) -> Archive:
    """Recordings of speech-like audio with gaps, and one segment per speech stretch."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(segment_s))
    rows = []
    for rec in range(n_recordings):
        rid = f"rec{rec:02d}"
        mine = [segment_s[i] for i in order[rec::n_recordings]]
        pos, chunks = 0, []
        for idx, dur in enumerate(mine):
            gap = int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
            chunks.append(np.zeros(gap, dtype=np.float32) + rng.normal(0, 0.001, gap).astype(np.float32))
            audio = speech_like(dur, seed=seed * 1000 + rec * 100 + idx)
            chunks.append(audio)
            rows.append({"recording_id": rid, "segment_index": idx, "start_sample": pos + gap,
                         "end_sample": pos + gap + len(audio), "backend": "synthetic", "content_id": rid})
            pos += gap + len(audio)
        write_pcm(cache_dir, rid, np.concatenate([*chunks, np.zeros(SAMPLE_RATE // 2, dtype=np.float32)]))
    return Archive(cache_dir, to_table(rows, VAD_SEGMENTS))


def batch_keys(batches: pa.Table, spans: dict[tuple[str, int], Span]) -> list[list[tuple[str, int]]]:
    """Each batch's items as the archive's (recording_id, segment_index) keys."""
    key_of = {span: k for k, span in spans.items()}
    cols = [batches[c].to_pylist() for c in ("content_ids", "start_samples", "end_samples")]
    return [[key_of[Span(*t)] for t in zip(c, s, e)] for c, s, e in zip(*cols)]


def pack(spans: dict[tuple[str, int], Span], budget_s: float, rng: np.random.Generator | None = None,
         first_id: int = 0) -> pa.Table:
    """A simple packer for tests: sort by length (or shuffle), fill up to ``budget_s`` padded seconds."""
    keys = sorted(spans)
    lengths = {k: s.n_samples for k, s in spans.items()}
    if rng is None:
        keys.sort(key=lambda k: lengths[k])
    else:
        rng.shuffle(keys)
    batches, current = [], []
    for key in keys:
        longest = max(lengths[k] for k in [*current, key]) / SAMPLE_RATE
        if current and longest * (len(current) + 1) > budget_s:
            batches.append(current)
            current = []
        current.append(key)
    batches.append(current)
    rows = []
    for i, items in enumerate(batches):
        frames = [lengths[k] // 960 + 1 for k in items]
        rows.append({"batch_id": first_id + i, "content_ids": [spans[k].content_id for k in items],
                     "start_samples": [spans[k].start_sample for k in items],
                     "end_samples": [spans[k].end_sample for k in items], "n_items": len(items),
                     "max_frames": max(frames),
                     "real_frames": sum(frames), "padded_frames": max(frames) * len(items)})
    return to_table(rows, BATCHES)


@pytest.fixture()
def cpu_cfg(tiny_model: Path) -> AsrConfig:
    """A fast CPU config: inline features, small parts."""
    return AsrConfig(model=str(tiny_model), device="cpu", threads=2, feature_workers=0, prefetch=2,
                     batches_per_part=2, warmup=False)
