"""Features for the model: fbank + LFR + CMVN with FunASR's own WavFrontend, ahead of the model.

Features are computed in CPU worker processes and delivered in batch order through a bounded
prefetch window, so the next batches are ready while the model decodes the current one. Segment
audio is read from the PCM cache by random access. ``feature_workers = 0`` computes inline.

Workers come from a ``forkserver`` context that preloads FunASR once: importing FunASR takes
seconds, and forking from a server that already has it makes each worker start at once. (``fork``
is unsafe once the parent has started CUDA or torch threads.)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vadpack.asr.types import BatchPlan, FeatureBatch, FrontendInfo
from vadpack.core.cache import pcm_path, read_segment
from vadpack.core.faults import fault_arg
from vadpack.core.interrupt import quiet_worker, workers_start_quiet
from vadpack.core.processes import main_module_hidden, worker_context
from vadpack.core.types import Span

_worker_state: dict[str, Any] = {}  # per worker process: the frontend and the cache folder


def build_frontend(info: FrontendInfo) -> Any:
    """FunASR's frontend for ``info`` (always dither 0, so features repeat exactly)."""
    from vadpack.asr.funasr_compat import registered_class

    return registered_class("frontend_classes", info.name)(**info.frontend_kwargs())


def segment_features(frontend: Any, audio: np.ndarray) -> np.ndarray:
    """(frames, feature_dim) float32 features of one segment, exactly as FunASR computes them.

    Raises:
        ValueError: the segment is empty.
    """
    if audio.size == 0:
        raise ValueError("segment has no samples")
    wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, :]
    with torch.inference_mode():
        feats, lens = frontend(wav, [wav.shape[1]])
    return feats[0, : int(lens[0])].numpy()


def batch_features(frontend: Any, cache_dir: Path, plan: BatchPlan, attempt: int = 0) -> FeatureBatch:
    """Features of every segment of a batch, zero padded to its longest item.

    A segment whose audio cannot be read or featurised is listed in ``failed`` with the reason; the
    others still decode.

    Args:
        frontend: FunASR's frontend.
        cache_dir: the PCM cache folder.
        plan: the batch.
        attempt: 0 for the first try; the test fault ``feature_worker=BATCH_ID`` fires only then.
    """
    t0 = time.perf_counter()
    if attempt == 0 and fault_arg("feature_worker") == str(plan.batch_id):
        raise RuntimeError(f"injected fault: feature worker failed on batch {plan.batch_id}")
    good: list[tuple[Span, np.ndarray]] = []
    failed: list[tuple[Span, str]] = []
    for item in plan.items:
        try:
            audio = read_segment(pcm_path(cache_dir, item.content_id), item.start_sample, item.end_sample)
            good.append((item, segment_features(frontend, audio)))
        except Exception as e:  # noqa: BLE001  (one unreadable segment must not sink the batch)
            failed.append((item, f"features failed: {type(e).__name__}: {e}"))
    feats, lengths = pad_features([f for _, f in good], frontend.output_size())
    return FeatureBatch(plan.batch_id, tuple(i for i, _ in good), feats, lengths, tuple(failed),
                        time.perf_counter() - t0)


def pad_features(items: list[np.ndarray], feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-item features into (n, longest, dim), zero padded, and their lengths."""
    lengths = np.array([len(f) for f in items], dtype=np.int32)
    out = np.zeros((len(items), int(lengths.max(initial=0)), feature_dim), dtype=np.float32)
    for i, f in enumerate(items):
        out[i, : len(f)] = f
    return out, lengths


class FeatureFeeder:
    """Yields a FeatureBatch per BatchPlan, in order, computed ahead of the consumer.

    At most ``prefetch`` batches are in flight or waiting, so memory stays bounded. When a worker
    raises for a batch (or the pool breaks), that batch is retried inline once; if the retry raises
    too, every segment of the batch is listed as failed with the reason, and the run goes on.
    """

    def __init__(self, info: FrontendInfo, cache_dir: Path, workers: int, prefetch: int,
                 frontend: Any | None = None) -> None:
        self.info, self.cache_dir, self.workers, self.prefetch = info, Path(cache_dir), workers, prefetch
        self._frontend = frontend
        self._pool: ProcessPoolExecutor | None = None
        self.retried: list[int] = []

    def __enter__(self) -> FeatureFeeder:  # noqa: PYI034
        if self.workers > 0:
            # Started from the forkserver, which ignores SIGINT; _init_worker makes Ctrl-C quiet.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=_worker_context(), initializer=_init_worker,
                initargs=(self.info, str(self.cache_dir), os.environ.get("VADPACK_FAULTS")))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def feed(self, plans: Iterable[BatchPlan]) -> Iterator[FeatureBatch]:
        """Features of each plan, in the order given."""
        if self._pool is None:
            for plan in plans:
                yield self._first_inline(plan)
            return
        window: deque[tuple[BatchPlan, Future | None]] = deque()
        for plan in plans:
            window.append((plan, self._submit(plan)))
            if len(window) >= self.prefetch:
                yield self._collect(*window.popleft())
        while window:
            yield self._collect(*window.popleft())

    def _submit(self, plan: BatchPlan) -> Future | None:
        try:
            return self._pool.submit(_worker_batch, plan)
        except (BrokenProcessPool, RuntimeError):
            return None  # the pool is gone: computed inline when collected

    def _collect(self, plan: BatchPlan, future: Future | None) -> FeatureBatch:
        if future is None:
            return self._first_inline(plan)
        try:
            return future.result()
        except Exception as e:  # noqa: BLE001  (a worker raised, or died and broke the pool)
            return self._retry_inline(plan, f"in a worker: {type(e).__name__}: {e}")

    def _first_inline(self, plan: BatchPlan) -> FeatureBatch:
        try:
            return batch_features(self._inline_frontend(), self.cache_dir, plan, attempt=0)
        except Exception as e:  # noqa: BLE001  (retried once, then recorded per segment)
            return self._retry_inline(plan, f"{type(e).__name__}: {e}")

    def _retry_inline(self, plan: BatchPlan, first_error: str) -> FeatureBatch:
        self.retried.append(plan.batch_id)
        try:
            return batch_features(self._inline_frontend(), self.cache_dir, plan, attempt=1)
        except Exception as e:  # noqa: BLE001  (the run goes on; the segments are marked failed)
            reason = f"features failed twice: {first_error}; then inline: {type(e).__name__}: {e}"
            return failed_batch(plan, reason, self.info.feature_dim)

    def _inline_frontend(self) -> Any:
        if self._frontend is None:
            self._frontend = build_frontend(self.info)
        return self._frontend


def failed_batch(plan: BatchPlan, reason: str, feature_dim: int) -> FeatureBatch:
    """A batch with no features: every segment failed for ``reason``."""
    empty = np.zeros((0, 0, feature_dim), dtype=np.float32)
    return FeatureBatch(plan.batch_id, (), empty, np.zeros(0, dtype=np.int32),
                        tuple((item, reason) for item in plan.items))


def start_worker_server() -> None:
    """Start the forkserver now, so its FunASR import overlaps with loading the model."""
    _worker_context()
    from multiprocessing import forkserver

    # Started with Ctrl-C held back: the server preloads FunASR before it ignores SIGINT itself.
    # The server imports only its preload list; hiding __main__ keeps it so on every Python version.
    with workers_start_quiet(), main_module_hidden():
        forkserver.ensure_running()


def _worker_context() -> mp.context.BaseContext:
    ctx = worker_context("forkserver")  # its children never re-run the caller's script (core.processes)
    # Has an effect only if this process has not started its forkserver yet.
    ctx.set_forkserver_preload(["vadpack.asr.features", "vadpack.asr.preload"])
    return ctx


def _init_worker(info: FrontendInfo, cache_dir: str, faults: str | None) -> None:
    quiet_worker()  # Ctrl-C: the parent reports the interrupt once, with no worker traceback
    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe
    # A forkserver child inherits the server's environment, which may predate the caller's.
    if faults is None:
        os.environ.pop("VADPACK_FAULTS", None)
    else:
        os.environ["VADPACK_FAULTS"] = faults
    _worker_state["frontend"] = build_frontend(info)
    _worker_state["cache_dir"] = Path(cache_dir)


def _worker_batch(plan: BatchPlan) -> FeatureBatch:
    return batch_features(_worker_state["frontend"], _worker_state["cache_dir"], plan, attempt=0)
