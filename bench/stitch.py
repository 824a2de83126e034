"""Benchmark: stitch the transcripts of a large synthetic archive.

Builds the work_dir tables a 10,000-recording archive would leave after asr (recordings, vad results,
segments, transcript part files with CJK and Latin tokens and relative token times), then runs the
stitch stage in a fresh subprocess and reports its wall time and peak RSS.

    .venv/bin/python bench/stitch.py [--recordings 10000] [--segments-per-recording 20]

The last line of output is one JSON object (see ../shared/BENCH.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vadpack.asr.config import AsrConfig
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.tables import RECORDINGS, TRANSCRIPTS, VAD_RECORDINGS, VAD_SEGMENTS, to_table, write_table
from vadpack.core.text import join_tokens
from vadpack.pipeline.store import asr_store
from vadpack.pipeline.workdir import WorkDir

VOCAB = np.array(list("我们今天开会讨论项目进度的问题") + ["the", "meet@@", "ing", "project", "is", "on", "track"])


def build_archive(work: Path, n_rec: int, seg_per_rec: int, seed: int = 0) -> int:
    """Write synthetic recordings/segments/transcripts tables; returns the number of tokens."""
    rng = np.random.default_rng(seed)
    rec_ids = [f"rec{i:06d}-{i * 2654435761 % 2**32:08x}" for i in range(n_rec)]
    n_seg = np.full(n_rec, seg_per_rec)
    n_seg[::97] = 0  # some recordings have no speech at all
    seg_len = rng.integers(int(0.5 * SAMPLE_RATE), 30 * SAMPLE_RATE, size=int(n_seg.sum()))
    gaps = rng.integers(int(0.3 * SAMPLE_RATE), 5 * SAMPLE_RATE, size=seg_len.size)
    rec_of_seg = np.repeat(np.arange(n_rec), n_seg)
    seg_index = np.arange(seg_len.size) - np.repeat(np.cumsum(n_seg) - n_seg, n_seg)
    ends = np.cumsum(seg_len + gaps)
    first = np.cumsum(n_seg) - n_seg  # each recording's first segment; its times restart at 0
    rec_base = np.repeat(np.where(first > 0, ends[np.maximum(first - 1, 0)], 0), n_seg)
    start = ends - seg_len - rec_base
    end = start + seg_len
    total = np.zeros(n_rec, dtype=np.int64)
    np.maximum.at(total, rec_of_seg, end + SAMPLE_RATE)
    total[total == 0] = 60 * SAMPLE_RATE
    ids = np.array(rec_ids, dtype=object)
    write_table(to_table({"recording_id": rec_ids, "path": [f"/archive/{r}.wav" for r in rec_ids],
                          "duration_s": total / SAMPLE_RATE, "sample_rate": [SAMPLE_RATE] * n_rec,
                          "channels": [1] * n_rec, "codec": ["pcm_s16le"] * n_rec, "size_bytes": total * 2,
                          "mtime_ns": [0] * n_rec, "status": ["ok"] * n_rec, "error": [None] * n_rec,
                          "content_id": rec_ids},
                         RECORDINGS), work / "recordings.parquet")
    speech = np.bincount(rec_of_seg, weights=seg_len, minlength=n_rec).astype(np.int64)
    write_table(to_table({"recording_id": rec_ids, "n_samples": total, "n_segments": n_seg.astype(np.int32),
                          "speech_samples": speech, "status": ["ok"] * n_rec, "error": [None] * n_rec,
                          "warning": [None] * n_rec}, VAD_RECORDINGS), work / "vad_recordings.parquet")
    write_table(to_table({"recording_id": ids[rec_of_seg].tolist(), "segment_index": seg_index.astype(np.int32),
                          "start_sample": start, "end_sample": end, "backend": ["webrtc"] * seg_len.size,
                          "content_id": ids[rec_of_seg].tolist()}, VAD_SEGMENTS), work / "segments.parquet")
    # The transcripts go where the stitch stage looks for them: the store of the default asr config.
    store = asr_store(AsrConfig(), WorkDir(work)).folder
    return write_transcripts(store, ids[rec_of_seg], start, end, rng)


def write_transcripts(parts: Path, content_ids: np.ndarray, start: np.ndarray, end: np.ndarray,
                      rng: np.random.Generator, exact_text: bool = True) -> int:
    """About 3 tokens per second of speech, evenly spaced, in part files of 20,000 segments.

    Each segment's text is its tokens joined as asr joins them (``join_tokens``, ~0.1 ms a segment
    in Python), or with ``exact_text=False`` joined column-wise with spaces and ``@@ `` dropped
    (about as long; for archives of millions of segments, where the exact join takes many minutes).
    """
    seg_len = end - start
    n_tok = np.maximum(1, seg_len // (SAMPLE_RATE // 3))
    offsets = np.concatenate([[0], np.cumsum(n_tok)])
    tokens = VOCAB[rng.integers(0, VOCAB.size, size=int(offsets[-1]))]
    step_ms = (seg_len * 1000 // SAMPLE_RATE) // n_tok
    pos = np.arange(offsets[-1]) - np.repeat(offsets[:-1], n_tok)
    t_start = (pos * np.repeat(step_ms, n_tok)).astype(np.int32)
    t_end = (t_start + np.repeat(step_ms, n_tok) * 0.8).astype(np.int32)
    for k, lo in enumerate(range(0, seg_len.size, 20_000)):
        hi = min(lo + 20_000, seg_len.size)
        o = offsets[lo:hi + 1] - offsets[lo]
        sl = slice(int(offsets[lo]), int(offsets[hi]))
        lists = {name: pa.ListArray.from_arrays(pa.array(o, pa.int32()), pa.array(col[sl]))
                 for name, col in (("tokens", tokens), ("token_start_ms", t_start), ("token_end_ms", t_end))}
        n = hi - lo
        # The asr stage writes each segment's joined text beside its tokens, as done here.
        texts = ([join_tokens(t) for t in lists["tokens"].to_pylist()] if exact_text else
                 pc.replace_substring(pc.binary_join(lists["tokens"], " "), "@@ ", ""))
        write_table(pa.table({"content_id": content_ids[lo:hi].tolist(), "start_sample": start[lo:hi],
                              "end_sample": end[lo:hi], "batch_id": np.zeros(n, np.int32), "text": texts, **lists,
                              **{name: pa.nulls(n, pa.string()) for name in ("language", "emotion", "event")},
                              "status": ["ok"] * n, "error": [None] * n}).cast(TRANSCRIPTS),
                    parts / f"part-{k:08d}.parquet")
    return int(offsets[-1])


STITCH_CHILD = """
import json, resource, sys, time
from pathlib import Path
from vadpack.pipeline.config import config_from_dict
from vadpack.pipeline.stages import StageContext, run_stitch
from vadpack.pipeline.workdir import WorkDir
work = Path(sys.argv[1])
cfg = config_from_dict({"inputs": ["/archive"], "work_dir": str(work),
                        "stitch": {"formats": json.loads(sys.argv[2])}})
t0 = time.perf_counter()
summary = run_stitch(StageContext(cfg, WorkDir(work), progress=False)).summary.as_dict()
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  **summary}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=10_000)
    ap.add_argument("--segments-per-recording", type=int, default=20)
    ap.add_argument("--formats", default="[]", help='exports to time too, as JSON, e.g. \'["srt"]\'')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vadpack-bench-stitch-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        n_tokens = build_archive(work, args.recordings, args.segments_per_recording)
        print(f"built a synthetic archive in {time.perf_counter() - t0:.1f} s: {args.recordings} recordings, "
              f"{n_tokens} tokens", file=sys.stderr)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        out = subprocess.run([sys.executable, "-c", STITCH_CHILD, str(work), args.formats], env=env,
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"the stitch stage failed:\n{out.stderr}")
        child = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps({"recordings": args.recordings, "segments": child["segments"], "tokens": child["tokens"],
                      "formats": json.loads(args.formats), "wall_s": round(child["wall_s"], 3),
                      "peak_rss_mb": round(child["peak_rss_mb"], 1),
                      "device": f"cpu x{os.cpu_count()}", "date": date.today().isoformat(),
                      "python": platform.python_version()}))


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
