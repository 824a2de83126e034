"""Benchmark: a large living archive. What stitch costs when few recordings change.

Builds the work_dir a stitched archive would leave after asr (recordings, vad results, segments,
transcript store; synthetic, as bench/stitch.py), then runs the real stitch stage (``run_stitch``, a
fresh process each time, for its peak RSS) through these steps:

  first     a stitch from nothing,
  add       ``--changes`` new recordings (their transcripts stored, as asr would),
  modify    ``--changes`` recordings get new content (new segments and transcripts),
  delete    ``--changes`` recordings leave the archive,
  nothing   nothing changed.

After each step the tables are compared with a stitch from nothing of the archive as it then stands
(tables only: exports do not change a table row). Every table is compared by its row count and the
sum of a hash of each row (order-insensitive), computed by DuckDB over the part files under a
memory limit, so 100 M rows never sit in Python's memory; the stitcher's own digests take no part.
The comparisons run after the last timed step, so the timed steps follow each other as a living
archive's runs would: each step leaves a snapshot (hard links: every file of the work_dir and of the
tables is written once and renamed, never changed in place) that is stitched from nothing later.
``--compare`` picks the steps to compare (at 100 M tokens each comparison is a stitch from nothing:
minutes). Peak RSS is the stitch process's; its forked export workers' largest is reported beside it
(they share the parent's pages until they touch them).

On a shared machine, ``--quiet-load L`` waits before the first incremental step until the 1-minute
load average is below ``L`` (the first stitch runs whatever the load); each step reports the load
average it started under.

    .venv/bin/python bench/archive_scale.py [--recordings 400] [--hours-each 0.1] [--changes 10]
    .venv/bin/python bench/archive_scale.py --recordings 10000 --hours-each 1 --compare delete,add,modify \
        --quiet-load 0.6   # the issue's size

The last line of output is one JSON object (see ../shared/BENCH.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
from vadpack.core.tables import RECORDINGS, VAD_RECORDINGS, VAD_SEGMENTS, to_table, write_table
from vadpack.pipeline.store import asr_store
from vadpack.pipeline.workdir import WorkDir

from bench.stitch import write_transcripts

STITCH_CHILD = """
import json, resource, sys, time
from pathlib import Path
from vadpack.pipeline.config import config_from_dict
from vadpack.pipeline.stages import StageContext, run_stitch
from vadpack.pipeline.workdir import WorkDir
work, out = Path(sys.argv[1]), sys.argv[2]
cfg = config_from_dict({"inputs": ["/archive"], "work_dir": str(work), "output_dir": out,
                        "stitch": {"formats": json.loads(sys.argv[3])}})
t0 = time.perf_counter()
summary = run_stitch(StageContext(cfg, WorkDir(work), progress=False)).summary.as_dict()
print(json.dumps({"wall_s": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, **summary}))
"""


class Archive:
    """A synthetic work_dir: recordings of ``seconds_each`` s, 2-30 s segments, ~3 tokens per speech second."""

    def __init__(self, work: Path, seconds_each: float, seed: int = 0) -> None:
        self.work, self.seconds_each = work, seconds_each
        self.rng = np.random.default_rng(seed)
        self.store = asr_store(AsrConfig(), WorkDir(work))
        self.part = 0
        self.rec = RECORDINGS.empty_table()
        self.vad = VAD_RECORDINGS.empty_table()
        self.seg = VAD_SEGMENTS.empty_table()

    def add(self, rids: list[str], tag: str = "") -> None:
        """New recordings (or new content for existing ids): their rows and their stored transcripts."""
        self.remove(rids)
        n = int(self.seconds_each * SAMPLE_RATE)
        starts, ends, owners = [], [], []
        for rid in rids:
            t = 0
            while True:
                t += int(self.rng.integers(int(0.3 * SAMPLE_RATE), 3 * SAMPLE_RATE))
                length = int(self.rng.integers(2 * SAMPLE_RATE, 30 * SAMPLE_RATE))
                if t + length > n:
                    break
                starts.append(t)
                ends.append(t + length)
                owners.append(rid)
                t += length
        cids = {rid: f"{rid}-{tag}" for rid in rids}
        owners_a = np.array(owners, dtype=object)
        index = np.zeros(len(owners), dtype=np.int32)
        for k in range(1, len(owners)):
            index[k] = index[k - 1] + 1 if owners[k] == owners[k - 1] else 0
        k = len(rids)
        self.rec = pa.concat_tables([self.rec, to_table({
            "recording_id": rids, "path": [f"/archive/{r[-1]}/{r}.wav" for r in rids],
            "content_id": [cids[r] for r in rids], "duration_s": [self.seconds_each] * k,
            "sample_rate": [SAMPLE_RATE] * k, "channels": [1] * k, "codec": ["pcm_s16le"] * k,
            "size_bytes": [n * 2] * k, "mtime_ns": [0] * k, "status": ["ok"] * k, "error": [None] * k},
            RECORDINGS)])
        start_a, end_a = np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)
        speech = {r: 0 for r in rids}
        n_seg = {r: 0 for r in rids}
        for o, s, e in zip(owners, starts, ends):
            speech[o] += e - s
            n_seg[o] += 1
        self.vad = pa.concat_tables([self.vad, to_table({
            "recording_id": rids, "n_samples": [n] * k, "n_segments": [n_seg[r] for r in rids],
            "speech_samples": [speech[r] for r in rids], "status": ["ok"] * k, "error": [None] * k,
            "warning": [None] * k}, VAD_RECORDINGS)])
        seg_cids = np.array([cids[o] for o in owners], dtype=object)
        self.seg = pa.concat_tables([self.seg, to_table({
            "recording_id": owners_a.tolist(), "segment_index": index, "start_sample": start_a, "end_sample": end_a,
            "backend": ["webrtc"] * len(owners), "content_id": seg_cids.tolist()}, VAD_SEGMENTS)])
        parts = self.store.folder.parent / f"batch-{self.part:06d}"
        parts.mkdir(parents=True)
        write_transcripts(parts, seg_cids, start_a, end_a, self.rng, exact_text=False)
        files = sorted(parts.glob("*.parquet"))
        self.store.folder.mkdir(parents=True, exist_ok=True)
        for p, name in zip(files, self.store.new_parts(len(files))):  # the store: one flat folder of parts
            p.rename(name)
        parts.rmdir()
        self.part += 1

    def remove(self, rids: list[str]) -> None:
        gone = pa.array(rids, pa.string())
        self.rec, self.vad, self.seg = (t.filter(pc.invert(pc.is_in(t["recording_id"], gone)))
                                        for t in (self.rec, self.vad, self.seg))

    def save(self) -> None:
        work = WorkDir(self.work)
        write_table(self.rec, work.recordings)
        write_table(self.vad, work.vad_recordings)
        write_table(self.seg.sort_by([("recording_id", "ascending"), ("segment_index", "ascending")]),
                    work.segments)


def stitch(work: Path, out: Path, formats: str) -> dict:
    """The stitch stage in a fresh process: its wall time, peak RSS and summary, and the process's
    wall time from start to exit (``process_s``: interpreter start and imports too)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", STITCH_CHILD, str(work), str(out), formats], env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"archive_scale: the stitch stage failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - t0}


def table_digest(con, folder: Path, name: str) -> tuple[int, int]:
    """Rows of a table and the sum of a 64-bit hash of each (a multiset digest: order-insensitive)."""
    return con.execute(f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) "
                       f"FROM read_parquet('{folder}/{name}.parquet/*.parquet') t").fetchone()


def tables_equal(a: Path, b: Path, temp: Path) -> bool:
    """Every public table of two output folders holds the same rows (as multisets, by digest)."""
    import duckdb
    from vadpack.core.tables import OUTPUT_SCHEMAS

    con = duckdb.connect(config={"memory_limit": "1GB", "temp_directory": str(temp), "threads": 2})
    for name in OUTPUT_SCHEMAS:
        x, y = table_digest(con, a, name), table_digest(con, b, name)
        if x != y:
            print(f"archive_scale: {name}: {x[0]} rows (digest {x[1]}) vs {y[0]} from nothing ({y[1]})",
                  file=sys.stderr)
            return False
    return True


STEPS = ("first", "add", "modify", "delete", "nothing")


def snapshot(tmp: Path, live: Path, step: str) -> Path:
    """Hard links of the work_dir and of the live tables as they stand after ``step``."""
    from vadpack.core.tables import OUTPUT_SCHEMAS

    snap = tmp / f"snap-{step}"
    (snap / "live").mkdir(parents=True)
    subprocess.run(["cp", "-al", str(tmp / "work"), str(snap / "work")], check=True)
    for name in OUTPUT_SCHEMAS:
        subprocess.run(["cp", "-al", str(live / f"{name}.parquet"), str(snap / "live")], check=True)
    return snap


def wait_quiet(limit: float | None) -> float:
    """Wait until the 1-minute load average is below ``limit`` (None: no wait); seconds waited."""
    t0 = time.perf_counter()
    while limit is not None and os.getloadavg()[0] >= limit:
        time.sleep(10)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=400)
    ap.add_argument("--hours-each", type=float, default=0.1)
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--formats", default='["srt", "json"]', help="exports, as JSON")
    ap.add_argument("--compare", default=",".join(STEPS),
                    help="steps whose tables are compared with a stitch from nothing, comma-separated, in "
                         "the order to run them ('' for none); default every step")
    ap.add_argument("--no-compare", action="store_true", help="the same as --compare ''")
    ap.add_argument("--quiet-load", type=float, default=None,
                    help="before the first incremental step, wait until the 1-minute load average is below this")
    args = ap.parse_args()
    compare = [] if args.no_compare else [s for s in args.compare.split(",") if s]
    if unknown := [s for s in compare if s not in STEPS]:
        sys.exit(f"archive_scale: --compare has {unknown}; steps are {', '.join(STEPS)}")
    tmp = Path(tempfile.mkdtemp(prefix="vadpack-bench-archive-scale-"))
    try:
        arch = Archive(tmp / "work", args.hours_each * 3600)
        t0 = time.perf_counter()
        ids = [f"r{i:07d}" for i in range(args.recordings)]
        for lo in range(0, len(ids), 500):
            arch.add(ids[lo:lo + 500], "v0")
        arch.save()
        print(f"archive_scale: built {args.recordings} recordings, {arch.seg.num_rows} segments in "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
        live, steps, waited = tmp / "live", {}, 0.0
        k = args.changes
        for step in STEPS:
            if step == "add":
                waited = wait_quiet(args.quiet_load)
                arch.add([f"n{i:07d}" for i in range(k)], "v0")
            elif step == "modify":
                arch.add(ids[1:1 + 7 * k:7], "v1")
            elif step == "delete":
                arch.remove(ids[2:2 + 11 * k:11])
            arch.save()
            load = os.getloadavg()[0]
            result = stitch(tmp / "work", live, args.formats)
            steps[step] = {"wall_s": round(result["wall_s"], 3), "peak_rss_mb": round(result["peak_rss_mb"], 1),
                           "workers_peak_rss_mb": round(result["workers_peak_rss_mb"], 1),
                           "end_to_end_s": round(result["process_s"], 3), "load_average": round(load, 2),
                           "rebuilt": result["recordings_rebuilt"], "removed": result["recordings_removed"],
                           "parts_written": result["parts_written"], "tokens": result["tokens"]}
            if step in compare:
                snapshot(tmp, live, step)
            print(f"archive_scale: {step}: {steps[step]}", file=sys.stderr)
        for step in compare:
            t1, snap = time.perf_counter(), tmp / f"snap-{step}"
            stitch(snap / "work", snap / "scratch", "[]")
            steps[step]["equal_from_scratch"] = tables_equal(snap / "live", snap / "scratch", tmp)
            shutil.rmtree(snap)
            print(f"archive_scale: {step} equal to a stitch from nothing: {steps[step]['equal_from_scratch']} "
                  f"({time.perf_counter() - t1:.0f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({
        "recordings": args.recordings, "hours_each": args.hours_each, "changes": k,
        "tokens": steps["first"]["tokens"], "formats": json.loads(args.formats),
        "first_wall_s": steps["first"]["wall_s"], "first_peak_rss_mb": steps["first"]["peak_rss_mb"],
        "first_workers_peak_rss_mb": steps["first"]["workers_peak_rss_mb"],
        "nothing_end_to_end_s": steps["nothing"]["end_to_end_s"],
        **{f"{s}_{key}": steps[s][key] for s in ("add", "modify", "delete", "nothing")
           for key in ("wall_s", "peak_rss_mb")},
        "compared": compare, "waited_for_quiet_s": round(waited, 1),
        "all_equal_from_scratch": None if not compare else all(steps[s]["equal_from_scratch"] for s in compare),
        "steps": steps, "device": f"cpu x{os.cpu_count()}", "date": date.today().isoformat()}))


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
