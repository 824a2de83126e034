"""Speaker embeddings of windows: one small backend interface, batches, prefetch and OOM halving.

A backend turns a window's samples into features on the CPU (:meth:`Embedder.features`, thread-safe,
run ahead of the model by :class:`Prefetcher`) and a list of feature arrays into L2-normalised
embeddings on its device (:meth:`Embedder.embed`). Two backends: ``resemblyzer``
(:mod:`speakers.resemblyzer_backend`) and ``campp`` (:mod:`speakers.campp`).

On CUDA out-of-memory a batch is halved and retried, down to a single window; only a window that
runs out of memory on its own is recorded as failed. A window whose audio or features cannot be
made is recorded as failed with the reason; the rest of its batch goes on.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from vadpack.core.cache import pcm_path, read_segment
from vadpack.core.device import resolve_device
from vadpack.core.oom import halve_on_oom, maybe_inject_oom
from vadpack.core.types import Span
from vadpack.speakers.config import SpeakersConfig
from vadpack.speakers.types import EmbedOutcome, FeatureBatch, Window, WindowFailure


class Embedder(Protocol):
    """A speaker embedding backend.

    Attributes:
        name: what was loaded (the backend and its model), for the summary and metadata.
        dim: embedding size.
        device: where :meth:`embed` runs.
    """

    name: str
    dim: int
    device: torch.device

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(frames, feature_dim) float32 features of float32 16 kHz samples in [-1, 1); thread-safe."""
        ...

    def embed(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        """(len(feats), dim) float32 L2-normalised embeddings, one per feature array, in order.

        Raises:
            torch.OutOfMemoryError: the batch does not fit on the device.
        """
        ...


class SegmentEmbedder(Embedder, Protocol):
    """A backend that can embed a segment's windows with its frame-level layers run once (campp)."""

    def embed_segment(self, feats: np.ndarray, frames: Sequence[tuple[int, int]]) -> np.ndarray:
        """(len(frames), dim) embeddings of the windows at ``frames`` of one segment's features."""
        ...


def load_embedder(cfg: SpeakersConfig) -> Embedder:
    """The configured backend (``auto`` resolved), loaded on its device with ``cfg.threads`` torch threads.

    Raises:
        ImportError: the backend's package is missing; the message names the extra to install.
        ValueError: the device is not available, or the model is not a speaker model.
        FileNotFoundError: a local model path does not exist.
    """
    device = resolve_device(cfg.device, "speakers.device")
    torch.set_num_threads(cfg.threads or (os.cpu_count() or 1))
    if cfg.resolved_backend == "campp":
        from vadpack.speakers.campp import CamppEmbedder

        return CamppEmbedder(cfg.model_name, device)
    from vadpack.speakers.resemblyzer_backend import ResemblyzerEmbedder

    return ResemblyzerEmbedder(device, weights_path=cfg.model or None)


def weights_spec(cfg: SpeakersConfig) -> str:
    """What names the configured model's weights: resemblyzer's checkpoint file (``speakers.model`` or
    the one in the wheel), or campp's hub id or folder. Its identity keys the stored labels.

    Raises:
        ImportError: the resemblyzer backend is asked for but not installed.
    """
    if cfg.resolved_backend == "campp":
        return cfg.model_name
    from vadpack.speakers.resemblyzer_backend import package_dir

    return cfg.model or str(package_dir() / "pretrained.pt")


def featurize(embedder: Embedder, cache_dir: Path, windows: Sequence[Window]) -> FeatureBatch:
    """Read each window from the PCM cache and compute its features; failures are kept per window."""
    ok: list[Window] = []
    feats: list[np.ndarray] = []
    failed: list[WindowFailure] = []
    for w in windows:
        try:
            audio = read_segment(pcm_path(cache_dir, w.content_id), w.start_sample, w.end_sample)
            feats.append(embedder.features(audio))
            ok.append(w)
        except Exception as e:  # noqa: BLE001  (one unreadable window must not sink the batch)
            failed.append(WindowFailure(w, f"features failed: {type(e).__name__}: {e}"))
    return FeatureBatch(tuple(ok), tuple(feats), tuple(failed))


def embed_batch(embedder: Embedder, batch: FeatureBatch) -> EmbedOutcome:
    """Embed a prepared batch; on out-of-memory halve it and retry, down to single windows.

    Returns:
        Embeddings of the windows that got one, in batch order, and a failure for every other
        window (those of ``batch.failed`` first).
    """
    if not batch.windows:
        return EmbedOutcome(np.zeros((0, embedder.dim), np.float32), (), batch.failed)
    rows, splits = _embed_or_split(embedder, list(batch.feats))
    rows = [_check_finite(r) for r in rows]
    ok = tuple(w for w, r in zip(batch.windows, rows) if not isinstance(r, str))
    failed = batch.failed + tuple(WindowFailure(w, r) for w, r in zip(batch.windows, rows) if isinstance(r, str))
    good = [r for r in rows if not isinstance(r, str)]
    embeddings = np.stack(good).astype(np.float32) if good else np.zeros((0, embedder.dim), np.float32)
    return EmbedOutcome(embeddings, ok, failed, splits)


def _check_finite(row: np.ndarray | str) -> np.ndarray | str:
    # CAM++ pools a standard deviation over time: a window of one frame gives NaN, never a speaker.
    if isinstance(row, str) or np.isfinite(row).all():
        return row
    return "the model gave a non-finite embedding (window too short for it)"


def _embed_or_split(embedder: Embedder, feats: list[np.ndarray]) -> tuple[list[np.ndarray | str], int]:
    def run(lo: int, hi: int) -> list[np.ndarray | str]:
        maybe_inject_oom(hi - lo)
        return list(embedder.embed(feats[lo:hi]))

    return halve_on_oom(run, len(feats), embedder.device, lambda error: error)


def featurize_segment(embedder: Embedder, cache_dir: Path, span: Span) -> np.ndarray | str:
    """The features of a whole segment (for ``speakers.embedding: segment``), or why they could not be made."""
    try:
        return embedder.features(read_segment(pcm_path(cache_dir, span.content_id), span.start_sample, span.end_sample))
    except Exception as e:  # noqa: BLE001  (one unreadable segment must not sink the group)
        return f"features failed: {type(e).__name__}: {e}"


def embed_segment(embedder: SegmentEmbedder, span: Span, windows: Sequence[Window], feats: np.ndarray | str
                  ) -> EmbedOutcome:
    """Embed the windows of one segment from its features (see :meth:`CamppEmbedder.embed_segment`).

    Returns:
        Embeddings of the windows that got one and a failure for every other window: all of them
        when the segment's features failed or it runs out of memory on the device.
    """
    empty = np.zeros((0, embedder.dim), np.float32)
    if isinstance(feats, str):
        return EmbedOutcome(empty, (), tuple(WindowFailure(w, feats) for w in windows))
    from vadpack.speakers.campp import window_frames

    frames = window_frames(span.start_sample, len(feats), [(w.start_sample, w.end_sample) for w in windows])
    try:
        rows: list[np.ndarray | str] = list(embedder.embed_segment(feats, frames))
    except torch.OutOfMemoryError:
        error = "out of memory on its segment"
        return EmbedOutcome(empty, (), tuple(WindowFailure(w, error) for w in windows))
    checked = [_check_finite(r) for r in rows]
    ok = tuple(w for w, r in zip(windows, checked) if not isinstance(r, str))
    failed = tuple(WindowFailure(w, r) for w, r in zip(windows, checked) if isinstance(r, str))
    good = [r for r in checked if not isinstance(r, str)]
    return EmbedOutcome(np.stack(good).astype(np.float32) if good else empty, ok, failed)


class Prefetcher:
    """Yields ``prepare(item)`` for each item, in order, computed ahead in a background thread.

    At most ``depth`` items are in flight or waiting, so memory stays bounded. A thread (not a
    process) is enough here: feature code (numpy FFTs, torch ops) releases the GIL, and the model
    runs with one torch thread, so the two overlap on two cores. An exception raised by ``prepare``
    reaches the consumer when it asks for that item.
    """

    def __init__(self, prepare: Callable[[object], object], depth: int) -> None:
        self.prepare, self.depth = prepare, max(1, depth)

    def run(self, items: Iterable[object]) -> Iterator[object]:
        with ThreadPoolExecutor(1, thread_name_prefix="speakers-features") as pool:
            window: deque[Future] = deque()
            for item in items:
                window.append(pool.submit(self.prepare, item))
                if len(window) > self.depth:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
