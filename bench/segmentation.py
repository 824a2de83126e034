"""Benchmark speech regions against the human RTTMs: vadpack's own VAD vs pyannote's segmentation-3.0.

The six labelled recordings of bench/speakers.py (VoxConverse ``aepyx``, the pyannote sample, four AMI
excerpts with their UEM), loaded with its loaders. Scored on a 10 ms grid inside the UEM, no collar:

- ``speech_fa``: seconds called speech where no human turn is, over the reference speech seconds;
- ``speech_miss``: reference speech seconds not called speech, over the same;
- ``overlap_precision`` / ``overlap_recall``: of the seconds called overlap (segmentation only: the
  VAD has no overlap output), the share where >= 2 human turns are active; of those, the share called
  (null where nothing is called / there is no reference overlap; means are over the files that have one).

``vad`` is ``vad.stage.segment_recording(pcm, VadConfig())`` (what bench/speakers.py uses today);
``seg`` is :func:`vadpack.speakers.segmentation.segment_speech` at its defaults (2.5 s hop).

Usage: .venv/bin/python bench/segmentation.py [--hop 2.5] [--threads 1]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vadpack.core.cache import SAMPLE_RATE  # noqa: E402
from vadpack.speakers.segmentation import load_segmentation, segment_speech  # noqa: E402
from vadpack.vad.config import VadConfig  # noqa: E402
from vadpack.vad.stage import segment_recording  # noqa: E402

from bench.speakers import FILES, REAL_DATA, decode, read_rttm, read_uem  # noqa: E402

STEP = SAMPLE_RATE // 100  # the 10 ms scoring grid, in samples


def mask(spans, n_steps: int, scale: float) -> np.ndarray:
    """Grid points covered by ``spans`` (start, end) given in units of ``scale`` grid points."""
    out = np.zeros(n_steps, bool)
    for s, e in spans:
        out[max(0, round(s * scale)):max(0, round(e * scale))] = True
    return out


def score(hyp_speech: np.ndarray, ref_count: np.ndarray, uem: np.ndarray, hyp_overlap: np.ndarray | None) -> dict:
    ref_speech, ref_overlap = (ref_count >= 1) & uem, (ref_count >= 2) & uem
    hyp_speech = hyp_speech & uem
    total = max(1, int(ref_speech.sum()))
    out = {"ref_speech_s": round(ref_speech.sum() / 100, 1),
           "speech_fa": round(float((hyp_speech & ~ref_speech).sum() / total), 4),
           "speech_miss": round(float((ref_speech & ~hyp_speech).sum() / total), 4)}
    if hyp_overlap is not None:
        hyp_overlap = hyp_overlap & uem
        hit, called, truth = int((hyp_overlap & ref_overlap).sum()), int(hyp_overlap.sum()), int(ref_overlap.sum())
        out |= {"ref_overlap_s": round(truth / 100, 1), "hyp_overlap_s": round(called / 100, 1),
                "overlap_precision": round(hit / called, 4) if called else None,
                "overlap_recall": round(hit / truth, 4) if truth else None}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hop", type=float, default=2.5, help="seconds between 10 s windows")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    model = load_segmentation()
    rows, seg_seconds, audio_seconds = [], 0.0, 0.0
    for name, (audio, rttm, uem_file) in FILES.items():
        pcm = decode([audio])
        n_steps = -(-len(pcm) // STEP)
        turns = read_rttm(REAL_DATA / rttm, name)
        ref_count = sum(mask([(s, e)], n_steps, 100).astype(int) for s, e, _ in turns)
        uem = mask(read_uem(REAL_DATA / uem_file if uem_file else None, name, len(pcm) / SAMPLE_RATE), n_steps, 100)
        t0 = time.perf_counter()
        seg = segment_speech(model, pcm, hop_s=args.hop)
        seg_seconds += time.perf_counter() - t0
        audio_seconds += len(pcm) / SAMPLE_RATE
        vad = segment_recording(pcm, VadConfig())
        row = {"file": name,
               "vad": score(mask(vad, n_steps, 1 / STEP), ref_count, uem, None),
               "seg": score(mask(seg.speech, n_steps, 1 / STEP), ref_count, uem, mask(seg.overlap, n_steps, 1 / STEP))}
        rows.append(row)
        print(json.dumps(row))
    mean = {src: {k: round(float(np.mean([r[src][k] for r in rows if r[src][k] is not None])), 4)
                  for k in rows[0][src] if not k.endswith("_s")} for src in ("vad", "seg")}
    print(json.dumps({"mean": mean, "hop_s": args.hop, "threads": args.threads,
                      "seg_xrt": round(audio_seconds / seg_seconds, 1), "files": rows}))


if __name__ == "__main__":
    main()
