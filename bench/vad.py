"""Benchmark the vad stage: speed, accuracy against human labels, where the length cap cuts, memory.

Four measurements, all at the default VadConfig:

- speed: the whole vad stage (decode + webrtcvad + gates + soft edges + segmenting + PCM cache write, worker pool
  start-up included) on an archive of 16 kHz wav files built from synthetic meetings.
  ``xrt_per_core`` = audio seconds / (wall seconds x worker processes); ``xrt_per_cpu_s`` = audio
  seconds / CPU seconds of the stage and its workers, which other load on the machine disturbs less.
- accuracy: recall and precision on a 10 ms grid over all human-labelled recordings of
  ../shared/data/real/labels.json together, next to the naive baseline (webrtcvad mode 2, 30 ms
  frames, every speech frame padded by 0.3 s); and per file (``files``: recall, precision, and the
  most of any one labelled utterance left uncovered), with ``min_file_recall`` the lowest recall.
- cuts: synthetic meetings with exactly known speech (speech-like bursts, background noise, and
  monologues over 30 s with short pauses); the fraction of length-cap cuts that fall in true pauses.
  A cut is a segment boundary that exists with ``max_segment_s = 30`` and not without the cap.
- memory: peak RSS of the vad stage (one worker, in a fresh subprocess) on a generated 3-hour 16 kHz
  wav file, written in blocks with soundfile.

Usage: .venv/bin/python bench/vad.py [--workers 2] [--speed-hours 4] [--rss-hours 3] [--meetings 8]
The last line of output is one JSON object (see ../shared/BENCH.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vadpack.core.fingerprint import file_content_id  # noqa: E402
from vadpack.core.types import RecordingRef  # noqa: E402
from vadpack.vad.config import VadConfig  # noqa: E402
from vadpack.vad.stage import run_vad, segment_recording  # noqa: E402

from tests.support.audio import decode_int16  # noqa: E402
from tests.support.scoring import grid_10ms, naive_regions  # noqa: E402
from tests.support.synthetic import synthetic_meeting  # noqa: E402

SR = 16_000
REAL_DATA = Path(os.environ.get("VADPACK_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


# ---- accuracy on human labels -------------------------------------------------------------------


def accuracy(real_dir: Path, cfg: VadConfig) -> dict:
    """Recall and precision of ``cfg`` and of the naive baseline over all human-labelled files, and per file.

    Per file: recall, precision and ``max_uncovered_s``, the most speech of any one labelled utterance
    that no segment covers (a split utterance loses its pause; soft onsets and offsets count too).
    """
    labels_file = real_dir / "labels.json"
    if not labels_file.is_file():
        print(f"accuracy: skipped, no labels at {labels_file} (set VADPACK_REAL_DATA)")
        return {"recall": None, "precision": None, "naive_recall": None, "naive_precision": None,
                "min_file_recall": None, "files": []}
    labels = json.loads(labels_file.read_text())
    totals = np.zeros((2, 3))  # rows: ours, naive; columns: tp, fp, fn
    files = []
    for name, info in labels.items():
        if not str(info.get("labels", "")).startswith("human"):
            continue
        pcm = decode_int16(str(real_dir / name))
        n = len(pcm) // (SR // 100)
        ours = grid_10ms([(a / SR, b / SR) for a, b in segment_recording(pcm, cfg)], n)
        for row, pred in enumerate((ours, grid_10ms(naive_regions(pcm), n))):
            totals[row] += _counts(grid_10ms(info["speech_s"], n), pred)
        files.append(_file_scores(name, info["speech_s"], ours))
        print(f"  {name:45s} recall {files[-1]['recall']:.3f} precision {files[-1]['precision']:.3f} "
              f"max uncovered in an utterance {files[-1]['max_uncovered_s']:.2f} s")
    (tp, fp, fn), (ntp, nfp, nfn) = totals
    return {"recall": round(_ratio(tp, tp + fn), 4), "precision": round(_ratio(tp, tp + fp), 4),
            "naive_recall": round(_ratio(ntp, ntp + nfn), 4), "naive_precision": round(_ratio(ntp, ntp + nfp), 4),
            "min_file_recall": min((f["recall"] for f in files), default=None), "files": files}


def _counts(truth: np.ndarray, pred: np.ndarray) -> list[int]:
    """True positives, false positives and false negatives of two 10 ms grids."""
    return [int((truth & pred).sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())]


def _file_scores(name: str, speech_s: list, covered: np.ndarray) -> dict:
    """One file's recall and precision, and the most of one labelled utterance left uncovered."""
    tp, fp, fn = _counts(grid_10ms(speech_s, len(covered)), covered)
    uncovered = max((grid_10ms([region], len(covered)) & ~covered).sum() / 100 for region in speech_s)
    return {"file": name, "recall": round(_ratio(tp, tp + fn), 4), "precision": round(_ratio(tp, tp + fp), 4),
            "max_uncovered_s": round(float(uncovered), 2)}


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 1.0


# ---- length-cap cuts on synthetic meetings ------------------------------------------------------


def synthetic_cuts(n_meetings: int, cfg: VadConfig) -> dict:
    """Fraction of length-cap cuts inside true pauses, and whether every segment fits the cap."""
    uncapped = dataclasses.replace(cfg, max_segment_s=600.0, merge_up_to_s=0.0)
    cuts = in_pause = 0
    fits = True
    for seed in range(n_meetings):
        meeting = synthetic_meeting(seed)
        capped = segment_recording(meeting.pcm, cfg)
        fits &= all(b - a <= cfg.max_segment_s * SR for a, b in capped)
        new_cuts = {a for a, _ in capped} - {a for a, _ in segment_recording(meeting.pcm, uncapped)}
        cuts += len(new_cuts)
        in_pause += sum(meeting.in_pause(c) for c in new_cuts)
    return {"synthetic_cuts_in_pauses": round(_ratio(in_pause, cuts), 4), "synthetic_cuts": cuts,
            "all_segments_within_max": bool(fits)}


# ---- speed ------------------------------------------------------------------------------------


def material(n: int = 4) -> list[np.ndarray]:
    """A few synthetic meetings (about 4-5 min each) to build long files from."""
    return [synthetic_meeting(100 + i).pcm for i in range(n)]


def write_long_wav(path: Path, seconds: float, pieces: list[np.ndarray], offset: int = 0) -> int:
    """Write ``seconds`` of 16 kHz audio by cycling through ``pieces``, streamed in blocks."""
    total, i = int(seconds * SR), offset
    written = 0
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as out:
        while written < total:
            piece = pieces[i % len(pieces)][: total - written]
            out.write(piece)
            written += len(piece)
            i += 1
    return written


def speed(tmp: Path, workers: int, hours: float, pieces: list[np.ndarray]) -> dict:
    """Run the whole vad stage on ``hours`` of 16 kHz wav spread over several files."""
    n_files = max(2 * workers, int(hours * 4))  # 15-minute files
    refs, audio_s = [], 0.0
    for k in range(n_files):
        path = tmp / f"speed{k:03d}.wav"
        audio_s += write_long_wav(path, hours * 3600 / n_files, pieces, offset=k) / SR
        refs.append(RecordingRef(f"speed{k:03d}", str(path), file_content_id(path)))
    cpu_before, start = _cpu_s(), time.perf_counter()
    outcomes = list(run_vad(refs, tmp / "cache_speed", VadConfig(workers=workers), progress=False))
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu_before
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
    # CPU time is the steadier figure on a shared machine: other processes stretch the wall clock.
    return {"xrt_per_core": round(audio_s / (wall * workers)), "xrt_per_cpu_s": round(audio_s / cpu),
            "speed_audio_h": round(audio_s / 3600, 2), "speed_wall_s": round(wall, 2), "workers": workers,
            "load_avg_1min": os.getloadavg()[0]}


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ---- memory on a 3-hour file ------------------------------------------------------------------

# Peak RSS from VmHWM: ru_maxrss would carry over the parent's size from before exec.
_RSS_CHILD = """
import json, re, sys, time
sys.path.insert(0, sys.argv[1])
from vadpack.core.fingerprint import file_content_id
from vadpack.core.types import RecordingRef
from vadpack.vad.config import VadConfig
from vadpack.vad.stage import run_vad
start = time.perf_counter()
ref = RecordingRef("long", sys.argv[2], file_content_id(sys.argv[2]))
(outcome,) = run_vad([ref], sys.argv[3], VadConfig(workers=1), progress=False)
print(json.dumps({"n_samples": outcome.n_samples, "segments": len(outcome.segments), "error": outcome.error,
                  "wall_s": time.perf_counter() - start,
                  "peak_rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024}))
"""


def peak_rss(tmp: Path, hours: float, pieces: list[np.ndarray]) -> dict:
    """Peak RSS of the vad stage on one ``hours``-long file, measured in a fresh subprocess."""
    path = tmp / "long.wav"
    n_samples = write_long_wav(path, hours * 3600, pieces)
    child = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(REPO), str(path), str(tmp / "cache_rss")],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["error"] is None and result["n_samples"] == n_samples, result
    key = f"peak_rss_mb_{hours:g}h"
    return {key: round(result["peak_rss_mb"], 1), "long_file_xrt_1core": round(n_samples / SR / result["wall_s"]),
            "long_file_segments": result["segments"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the speed run")
    parser.add_argument("--speed-hours", type=float, default=4.0, help="audio in the speed archive")
    parser.add_argument("--rss-hours", type=float, default=3.0, help="length of the memory-test file")
    parser.add_argument("--meetings", type=int, default=8, help="synthetic meetings for the cut test")
    args = parser.parse_args()
    cfg = VadConfig()
    result: dict = {}
    print("accuracy on human-labelled recordings (default settings):")
    result.update(accuracy(REAL_DATA, cfg))
    result.update(synthetic_cuts(args.meetings, cfg))
    pieces = material()
    with tempfile.TemporaryDirectory(prefix="vadpack-bench-") as tmp:
        result.update(speed(Path(tmp), args.workers, args.speed_hours, pieces))
    with tempfile.TemporaryDirectory(prefix="vadpack-bench-") as tmp:
        result.update(peak_rss(Path(tmp), args.rss_hours, pieces))
    result.update({"device": f"cpu x{os.cpu_count()}",
                   "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    keys = ["xrt_per_core", "recall", "precision", "min_file_recall", "naive_recall", "naive_precision",
            "synthetic_cuts_in_pauses"]
    print(json.dumps({**{k: result.pop(k) for k in keys}, **result}))


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
