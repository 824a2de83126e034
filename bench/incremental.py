"""Benchmark: a living archive. What each everyday change costs, against a full run.

An archive of ``--recordings`` synthetic conversations (two turns of speech-like bursts, 16 kHz wav)
in four folders is transcribed from nothing with ``vadpack run`` (a fresh process each time, as a
user runs it; random Paraformer-large, which costs what the trained model costs). Then, one after
another:

  (a) 2 % new files are added,
  (b) ``packer.budget_s`` is changed,
  (c) a folder is renamed,
  (d) one file is modified,
  (e) 1 % of the files are deleted.

For each: decoded audio seconds (the asr stage's ``decoded_audio_s``) as a fraction of the full
run's, wall time as a fraction of the full run's, and whether the four tables (and the exports)
equal a from-scratch run on the archive as it then stands (only ``segments.batch_id``, the batch a
segment was decoded in, may differ).

Usage: .venv/bin/python bench/incremental.py [--recordings 240] [--size large|tiny] [--work DIR]
The last line of output is one JSON object (see ../shared/BENCH.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.outputs import snapshot  # noqa: E402
from tests.support.synthetic import synthetic_meeting  # noqa: E402

FOLDERS = ("room-a", "room-b", "room-c", "room-d")
SR = 16_000


def main() -> None:
    args = parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="vadpack-bench-incremental-"))
    work.mkdir(parents=True, exist_ok=True)
    model = model_folder(work, args.size)
    archive = work / "archive"
    shutil.rmtree(archive, ignore_errors=True)
    files = [write_clip(archive / FOLDERS[i % len(FOLDERS)] / f"talk{i:04d}.wav", args.seed + i)
             for i in range(args.recordings)]
    print(f"incremental: {len(files)} recordings written", file=sys.stderr)
    live = Runs(work, model, archive, args.threads)
    full = live.run("full")
    results = {"full": full}
    scratch = {}

    new = [write_clip(archive / FOLDERS[i % len(FOLDERS)] / f"new{i:04d}.wav", args.seed + 10_000 + i)
           for i in range(math.ceil(0.02 * args.recordings))]
    results["new_2pct"] = live.run("new_2pct")
    scratch["new_2pct"] = live.scratch("new_2pct")

    results["budget_change"] = live.run("budget_change", ["packer.budget_s=25"])
    scratch["budget_change"] = scratch["new_2pct"]  # the same archive: the tables must not change

    (archive / FOLDERS[1]).rename(archive / f"{FOLDERS[1]}-renamed")
    results["renamed"] = live.run("renamed")
    scratch["renamed"] = live.scratch("renamed")

    victim = sorted((archive / FOLDERS[2]).glob("*.wav"))[0]
    write_clip(victim, args.seed + 20_000)
    results["modified"] = live.run("modified")
    scratch["modified"] = live.scratch("modified")

    gone = sorted(archive.rglob("*.wav"))[:: max(1, round(1 / 0.01))][: math.ceil(0.01 * args.recordings)]
    for path in gone:
        path.unlink()
    results["deleted"] = live.run("deleted")
    scratch["deleted"] = live.scratch("deleted")
    print(json.dumps(report(args, results, scratch, live, len(new), len(gone))))
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recordings", type=int, default=240)
    p.add_argument("--size", choices=("large", "tiny"), default="large", help="random Paraformer size")
    p.add_argument("--threads", type=int, default=0, help="asr.threads (0: one per core)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="work folder (default: a new temporary folder, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    return p.parse_args()


def write_clip(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synthetic_meeting(seed, n_turns=2, monologue_every=99).pcm, SR, subtype="PCM_16")
    return path


def model_folder(work: Path, size: str) -> Path:
    folder = work / f"model-{size}"
    if not (folder / "model.pt").exists():
        from vadpack.testkit.tiny import write_tiny_model

        write_tiny_model(folder, size=size, seed=0)
    return folder


class Runs:
    """The live work_dir, rerun after each change, and from-scratch runs to compare with."""

    def __init__(self, work: Path, model: Path, archive: Path, threads: int) -> None:
        self.work, self.model, self.archive, self.threads = work, model, archive, threads

    def config(self, name: str) -> Path:
        data = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
        data.update(inputs=[str(self.archive)], work_dir=str(self.work / name), output_dir=None)
        data["asr"].update(model=str(self.model), device="cpu", threads=self.threads)
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def run(self, step: str, overrides: list[str] = (), name: str = "live") -> dict:
        """``vadpack run`` in a fresh process; its wall time and what the asr stage decoded."""
        cfg = self.config(name)
        manifest = self.work / name / "manifests" / "asr.json"
        before = manifest.stat().st_mtime_ns if manifest.exists() else None
        cmd = [sys.executable, "-m", "vadpack", "-q", "run", str(cfg), "--no-progress"]
        cmd += [a for o in overrides for a in ("-o", o)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True)
        wall_s = time.perf_counter() - t0
        if proc.returncode not in (0, 3):
            raise SystemExit(f"incremental: vadpack run failed at step {step}:\n{proc.stderr[-3000:]}")
        ran_asr = manifest.exists() and manifest.stat().st_mtime_ns != before
        asr = json.loads(manifest.read_text())["summary"] if ran_asr else {}
        out = {"wall_s": round(wall_s, 2), "decoded_audio_s": round(asr.get("decoded_audio_s", 0.0), 2),
               "decoded_segments": asr.get("decoded_segments", 0)}
        print(f"incremental: {step}: {out}", file=sys.stderr)
        return out

    def scratch(self, step: str) -> bool:
        """Whether the live tables equal those of a run from nothing on the archive as it stands."""
        shutil.rmtree(self.work / "scratch", ignore_errors=True)
        self.run(f"{step} (from scratch)", name="scratch")
        same = snapshot(self.work / "live" / "output") == snapshot(self.work / "scratch" / "output")
        shutil.rmtree(self.work / "scratch", ignore_errors=True)
        print(f"incremental: {step}: tables equal from scratch: {same}", file=sys.stderr)
        return same


def report(args: argparse.Namespace, results: dict, scratch: dict, live: Runs, n_new: int, n_gone: int) -> dict:
    full = results["full"]

    def fraction(step: str, key: str) -> float:
        return round(results[step][key] / max(full[key], 1e-9), 4)

    docs = pq.read_table(live.work / "live" / "output" / "documents.parquet")
    return {
        "new_2pct_decoded_fraction": fraction("new_2pct", "decoded_audio_s"),
        "new_2pct_wall_fraction": fraction("new_2pct", "wall_s"),
        "modified_decoded_fraction": fraction("modified", "decoded_audio_s"),
        "modified_wall_fraction": fraction("modified", "wall_s"),
        "renamed_decoded_fraction": fraction("renamed", "decoded_audio_s"),
        "renamed_wall_fraction": fraction("renamed", "wall_s"),
        "budget_change_decoded_fraction": fraction("budget_change", "decoded_audio_s"),
        "budget_change_wall_fraction": fraction("budget_change", "wall_s"),
        "deleted_decoded_fraction": fraction("deleted", "decoded_audio_s"),
        "deleted_wall_fraction": fraction("deleted", "wall_s"),
        "deleted_tables_equal": scratch["deleted"],
        "tables_equal_from_scratch": scratch,
        "all_tables_equal_from_scratch": all(scratch.values()),
        "recordings": args.recordings, "new_files": n_new, "deleted_files": n_gone,
        "full_wall_s": full["wall_s"], "full_decoded_audio_s": full["decoded_audio_s"],
        "full_decoded_segments": full["decoded_segments"],
        "audio_hours_now": round(float(np.sum(docs["duration_s"].to_numpy())) / 3600, 4),
        "steps": results, "model": f"random paraformer-{args.size}", "threads": args.threads or os.cpu_count(),
        "device": f"cpu x{os.cpu_count()}", "date": datetime.date.today().isoformat(),
    }


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
