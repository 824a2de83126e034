"""The vad stage: recordings -> PCM cache + speech segments, in parallel worker processes.

Each worker streams one recording at a time: decode (core.audio) -> int16 blocks written to the
PCM cache and fed, as they pass, to the frame classifier -> gates -> soft edges -> state machine ->
segments. The file is read once and memory stays one block whatever its length.

The cache is keyed by content: ``<content_id>.s16`` holds the audio of every recording whose bytes
hash to that id, so a renamed, moved or copied file is never decoded again, and a modified file
(a new content id) is. Next to it the worker writes ``<content_id>.vad.json`` (atomically, after the
cache file is complete) with the decoded length, any warning, the hash of the vad config and the
segments. A rerun reuses a recording whose sidecar matches; when only the vad config changed it
reruns the VAD on the cached PCM without decoding again.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from vadpack.core.atomic import write_text_atomic
from vadpack.core.audio import AudioError, decode_to_pcm
from vadpack.core.cache import SAMPLE_RATE, open_pcm, pcm_path
from vadpack.core.configtools import result_hash
from vadpack.core.faults import fault_arg, fault_point
from vadpack.core.interrupt import quiet_worker, workers_start_quiet
from vadpack.core.processes import worker_context
from vadpack.core.progress import progress_bar
from vadpack.core.types import RecordingRef, Segment
from vadpack.vad.backends import make_classifier
from vadpack.vad.config import VadConfig
from vadpack.vad.edges import grow_soft_edges
from vadpack.vad.gates import gate_mask
from vadpack.vad.segmenter import segments_from_track
from vadpack.vad.types import FrameTrack, VadOutcome

SIDECAR_VERSION = 2  # 2: keyed by content id, not by path, size and mtime
BLOCK_SAMPLES = 10 * SAMPLE_RATE
# A recording that kills its worker process twice (a crash inside a decoder) is failed, not retried.
MAX_CRASHES = 2


def run_vad(
    recordings: Sequence[RecordingRef], cache_dir: Path, cfg: VadConfig, progress: bool = True,
    force: bool = False,
) -> Iterator[VadOutcome]:
    """Decode, cache and segment every recording; yield one outcome per recording, in any order.

    Args:
        recordings: the recordings to process.
        cache_dir: the PCM cache folder (see :mod:`core.cache`).
        cfg: the vad config; ``cfg.n_workers`` worker processes (1 runs inline).
        progress: show a progress bar (files, audio hours, x real time) when stderr is a terminal.
        force: decode and segment every recording again, ignoring the cache's results.

    Yields:
        A :class:`VadOutcome` per recording. A file that fails has ``error`` set and no segments;
        one bad file never stops the stage.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Recordings the cache already answers cost a sidecar read here, not a worker process: a grown
    # archive sends only its new files to the pool.
    known = {} if force else {ref: cached_outcome(ref, cache_dir, cfg) for ref in recordings}
    todo = [ref for ref in recordings if known.get(ref) is None]
    n_workers = min(cfg.n_workers, len(todo))
    if n_workers > 1:
        todo = largest_first(todo)
    fresh = (
        (process_recording(ref, cache_dir, cfg, force) for ref in todo)
        if n_workers <= 1
        else _run_pool(todo, cache_dir, cfg, n_workers, force)
    )
    outcomes = itertools.chain((out for out in known.values() if out is not None), fresh)
    yield from _with_progress(outcomes, len(recordings), progress)


def largest_first(recordings: Sequence[RecordingRef]) -> list[RecordingRef]:
    """``recordings`` by file size, largest first (ties in the given order), so that no big file starts last.

    Workers take the next file when they are free, so in the order given, a long recording near the end
    keeps one worker busy while the others idle: the 1 h benchmark archive's largest file is its last,
    and its vad stage took 2.7 s in that order on 2 workers, 2.25 s largest first. A file that cannot be
    read sorts as empty (its worker reports the error).
    """

    def size(ref: RecordingRef) -> int:
        try:
            return os.path.getsize(ref.path)
        except OSError:
            return 0

    return sorted(recordings, key=size, reverse=True)


def cached_outcome(ref: RecordingRef, cache_dir: Path, cfg: VadConfig) -> VadOutcome | None:
    """The outcome the cache holds for ``ref`` under ``cfg`` (same content, same settings), or None."""
    side = _read_sidecar(sidecar_path(cache_dir, ref.content_id), ref.content_id)
    if side is None or side["vad_hash"] != result_hash(cfg):
        return None
    return _outcome(ref.recording_id, side["n_samples"], side["segments"], side["warning"])


def segment_recording(pcm: np.ndarray, cfg: VadConfig) -> list[tuple[int, int]]:
    """Speech segments of a whole recording held in memory: a pure function for tests and tools.

    Args:
        pcm: int16 samples at 16 kHz, mono (an array or a memmap of the PCM cache; it is read in
            blocks).
        cfg: the vad config.

    Returns:
        ``[(start_sample, end_sample), ...]`` sorted, non-overlapping, inside the recording, each at
        most ``cfg.max_segment_s`` long.
    """
    classifier = make_classifier(cfg)
    for i in range(0, len(pcm), BLOCK_SAMPLES):
        classifier.feed(np.asarray(pcm[i: i + BLOCK_SAMPLES], dtype=np.int16))
    return segments_of(classifier.finish(), cfg)


def segments_of(track: FrameTrack, cfg: VadConfig) -> list[tuple[int, int]]:
    """Gate a classifier's frames, grow the speech into its soft edges, and turn it into segments."""
    keep = gate_mask(track, cfg)
    gated = dataclasses.replace(track, speech=track.speech & keep)
    return segments_from_track(grow_soft_edges(gated, keep, cfg), cfg)


def sidecar_path(cache_dir: Path, content_id: str) -> Path:
    """The vad result of one content, beside its PCM cache file."""
    return Path(cache_dir) / f"{content_id}.vad.json"


# ---- one recording (runs in a worker) ---------------------------------------------------------


def process_recording(ref: RecordingRef, cache_dir: Path, cfg: VadConfig, force: bool = False) -> VadOutcome:
    """Decode, cache and segment one recording; any failure becomes ``VadOutcome.error``.

    ``force`` decodes and segments again even when the cache says the result stands.

    numpy's BLAS runs on one thread here. The resampler and the channel downmix are many small
    matrix-vector products, which OpenBLAS splits across every core and whose idle threads then spin:
    with one worker per core, the workers took each other's cores (the 1 h benchmark archive's vad
    stage: 4.1 s and 7.7 CPU seconds with 2 workers; 2.3 s and 4.3 CPU seconds so, identical PCM).
    """
    try:
        with threadpool_limits(1, user_api="blas"):
            return _process(ref, Path(cache_dir), cfg, force)
    except AudioError as e:
        return VadOutcome(ref.recording_id, 0, (), error=str(e))
    except MemoryError:
        return VadOutcome(ref.recording_id, 0, (), error="out of memory while decoding this file")
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the stage; the reason is kept
        return VadOutcome(ref.recording_id, 0, (), error=f"{type(e).__name__}: {e}")


def _process(ref: RecordingRef, cache_dir: Path, cfg: VadConfig, force: bool) -> VadOutcome:
    if fault_arg("vad_worker_crash") == ref.recording_id and multiprocessing.parent_process() is not None:
        os._exit(70)  # test-only (VADPACK_FAULTS): a worker dies the way a crash in a native decoder would
    pcm_file = pcm_path(cache_dir, ref.content_id)
    # Same content, same settings: the segments stand, even if the PCM was deleted since
    # (vad.keep_pcm: false); asr decodes the file again only if it needs the audio.
    cached = None if force else cached_outcome(ref, cache_dir, cfg)
    if cached is not None:
        return cached
    side = None if force else _read_sidecar(sidecar_path(cache_dir, ref.content_id), ref.content_id)
    if side is not None and pcm_complete(pcm_file, side["n_samples"]):
        # Only the vad config changed: segment the cached PCM again instead of decoding the file.
        n_samples, warning = side["n_samples"], side["warning"]
        segments = segment_recording(open_pcm(pcm_file), cfg)  # a memmap: read block by block
    else:
        classifier = make_classifier(cfg)
        decoded = decode_to_pcm(ref.path, pcm_file, on_block=classifier.feed)
        n_samples, warning = decoded.n_samples, decoded.warning
        segments = segments_of(classifier.finish(), cfg)
    _write_sidecar(sidecar_path(cache_dir, ref.content_id), {
        "version": SIDECAR_VERSION, "content_id": ref.content_id, "n_samples": n_samples, "warning": warning,
        "vad_hash": result_hash(cfg), "segments": segments,
    })
    return _outcome(ref.recording_id, n_samples, segments, warning)


def ensure_pcm(ref: RecordingRef, cache_dir: Path) -> str | None:
    """Decode ``ref`` into the PCM cache again if its cache file is gone; None, or why it failed.

    With ``vad.keep_pcm: false`` the cache file of a fully transcribed recording is deleted; a later
    run that must decode some of its segments (another model, say) brings it back here.
    """
    side = _read_sidecar(sidecar_path(cache_dir, ref.content_id), ref.content_id)
    pcm_file = pcm_path(cache_dir, ref.content_id)
    if side is not None and pcm_complete(pcm_file, side["n_samples"]):
        return None
    try:
        decode_to_pcm(ref.path, pcm_file)
    except (AudioError, OSError) as e:
        return str(e)
    return None


def ensure_pcm_many(refs: Sequence[RecordingRef], cache_dir: Path, n_workers: int) -> dict[str, str]:
    """:func:`ensure_pcm` for many recordings, ``n_workers`` at a time; content id -> why it failed.

    A rerun that needs the audio of a whole archive whose PCM was dropped (``vad.keep_pcm``) decodes it
    all again before the stage starts, ~10-50 s per audio hour on one core (bench/pcm_cache.py): in
    worker processes, as vad decoded it. A pool that breaks (a crash in native code) leaves the rest to
    be decoded here, one by one.
    """
    errors: dict[str, str] = {}
    todo = list(refs)
    if n_workers > 1 and len(todo) > 1:
        pool = ProcessPoolExecutor(min(n_workers, len(todo)), mp_context=_mp_context(), initializer=quiet_worker)
        try:
            futures = {ref.content_id: pool.submit(ensure_pcm, ref, cache_dir) for ref in todo}
            done = []
            for ref in todo:
                try:
                    error = futures[ref.content_id].result()
                except BrokenProcessPool:
                    break
                done.append(ref)
                if error:
                    errors[ref.content_id] = error
            todo = todo[len(done):]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for ref in todo:
        error = ensure_pcm(ref, cache_dir)
        if error:
            errors[ref.content_id] = error
    return errors


def pcm_complete(pcm_file: Path, n_samples: int) -> bool:
    """Whether the cache file holds exactly ``n_samples`` samples (a complete, current decode)."""
    try:
        return pcm_file.stat().st_size == 2 * int(n_samples)
    except OSError:
        return False


def _outcome(recording_id: str, n_samples: int, segments: list, warning: str | None) -> VadOutcome:
    segs = tuple(Segment(recording_id, i, int(a), int(b)) for i, (a, b) in enumerate(segments))
    return VadOutcome(recording_id, int(n_samples), segs, warning=warning)


def _read_sidecar(side_file: Path, content_id: str) -> dict | None:
    """The sidecar when it belongs to this content and its version, else None."""
    try:
        side = json.loads(side_file.read_text())
        int(side["n_samples"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if side.get("version") != SIDECAR_VERSION or side.get("content_id") != content_id:
        return None
    return side


def _write_sidecar(side_file: Path, data: dict) -> None:
    write_text_atomic(side_file, json.dumps(data, separators=(",", ":")))


# ---- many recordings ---------------------------------------------------------------------------


def _run_pool(
    recordings: Sequence[RecordingRef], cache_dir: Path, cfg: VadConfig, n_workers: int, force: bool
) -> Iterator[VadOutcome]:
    """Process recordings in worker processes, surviving workers that die.

    A worker killed by a crash in native code breaks the whole pool. The recordings then in flight
    are retried in a fresh pool, each one alone, so that a second crash names the culprit exactly;
    the culprit is failed with a reason instead of taking the stage down.
    """
    todo = deque(recordings)
    crashes: Counter[str] = Counter()
    while todo:
        suspects: list[RecordingRef] = []
        # Quiet on Ctrl-C: the parent reports the interrupt once (core.interrupt).
        pool = ProcessPoolExecutor(n_workers, mp_context=_mp_context(), initializer=quiet_worker)
        try:
            yield from _drain(pool, todo, (cache_dir, cfg, force), n_workers, crashes, suspects)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for ref in suspects:
            crashes[ref.recording_id] += 1
            if crashes[ref.recording_id] >= MAX_CRASHES:
                yield VadOutcome(ref.recording_id, 0, (), error="the worker process crashed while decoding this "
                                 "file (twice): the file is probably corrupt; re-encode it and run again")
            else:
                todo.appendleft(ref)


def _drain(pool: ProcessPoolExecutor, todo: deque, args: tuple, n_workers: int, crashes: Counter,
           suspects: list[RecordingRef]) -> Iterator[VadOutcome]:
    """Keep ``pool`` busy from ``todo``; stop at the first crash, moving in-flight work to ``suspects``."""
    running: dict[Future, RecordingRef] = {}
    while todo or running:
        # A recording that was in flight during a crash runs alone, so a second crash names it.
        while todo and len(running) < 2 * n_workers:
            if running and (crashes[todo[0].recording_id] or any(crashes[r.recording_id] for r in running.values())):
                break
            ref = todo.popleft()
            try:
                with workers_start_quiet():  # submit spawns the workers
                    running[pool.submit(process_recording, ref, *args)] = ref
                    fault_point("vad.submit")  # Ctrl-C is held back here, as a worker starts
            except BrokenProcessPool:
                # A worker died after the last wait returned: this one never ran. The futures of the
                # work in flight carry the crash; wait collects them below.
                todo.appendleft(ref)
                if not running:
                    return
                break
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            ref = running.pop(future)
            try:
                yield future.result()
            except BrokenProcessPool:
                suspects.append(ref)
            except Exception as e:  # noqa: BLE001 - e.g. a result that failed to unpickle
                yield VadOutcome(ref.recording_id, 0, (), error=f"{type(e).__name__}: {e}")
        if suspects:
            suspects.extend(running.values())
            return


def _mp_context() -> multiprocessing.context.BaseContext:
    # spawn, not fork: a forked worker inherits the parent's threads and locks (tqdm, torch, BLAS
    # pools) and can deadlock. Not forkserver either: its children see the environment of the moment
    # the server started, not the current one, which breaks VADPACK_FAULTS and thread settings.
    # worker_context: the workers never re-run the caller's script (core.processes).
    return worker_context("spawn")


def _with_progress(outcomes: Iterator[VadOutcome], total: int, progress: bool) -> Iterator[VadOutcome]:
    """Pass outcomes through, showing files, audio hours and x real time on a tqdm bar."""
    start, audio_s = time.perf_counter(), 0.0
    with progress_bar(total, "file", "vad", progress) as bar:
        for outcome in outcomes:
            fault_point("vad.recording_done")
            audio_s += outcome.n_samples / SAMPLE_RATE
            if not bar.disable:
                xrt = audio_s / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{audio_s / 3600:.2f} h audio, {xrt:.0f}x real time", refresh=False)
                bar.update(1)
            yield outcome
