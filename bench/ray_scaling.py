"""Benchmark: does the Ray engine spread the work? The same archive with 1 and with 2 CPU workers.

Runs the whole pipeline with ``engine: ray`` on a local Ray cluster twice: ``num_cpus=1`` with one
asr actor, then ``num_cpus=2`` with two, on a generated archive of synthetic meetings and the tiny
model (or ``--model DIR``). Reports the wall time of the vad and asr stages for each and the
speed-up. Both runs decode the same segments; their tables are compared too.

    .venv/bin/python bench/ray_scaling.py [--files 8] [--turns 12]

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vadpack.core.cache import SAMPLE_RATE  # noqa: E402

from tests.support.synthetic import synthetic_meeting  # noqa: E402


def make_archive(root: Path, n_files: int, n_turns: int) -> float:
    root.mkdir(parents=True)
    total = 0
    for i in range(n_files):
        m = synthetic_meeting(seed=i, n_turns=n_turns)
        sf.write(root / f"meeting_{i:02d}.wav", m.pcm, SAMPLE_RATE, subtype="PCM_16")
        total += len(m.pcm)
    return total / SAMPLE_RATE


def run(tmp: Path, archive: Path, model: Path, workers: int) -> dict:
    """One whole `vadpack run` in a fresh process (so each gets its own Ray cluster)."""
    d = tmp / f"workers{workers}"
    d.mkdir()
    cfg = {"inputs": [str(archive)], "work_dir": str(d / "work"), "engine": "ray",
           "ray": {"num_cpus": workers, "concurrency": workers},
           "packer": {"budget_s": 60, "max_items": 16},
           "asr": {"model": str(model), "device": "cpu", "threads": 1, "feature_workers": 0,
                   "batches_per_part": 1},
           "stitch": {"formats": []}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vadpack", "run", str(d / "config.yaml"), "--no-progress"],
                   check=True, cwd=REPO, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    manifests = {s: json.loads((d / "work" / "manifests" / f"{s}.json").read_text()) for s in ("vad", "asr")}
    segs = pq.read_table(d / "work" / "output" / "segments.parquet").sort_by("recording_id").to_pylist()
    return {"wall_s": wall, "segments": segs, "manifests": manifests, "work": d / "work",
            "asr": manifests["asr"]["summary"]}


def stage_seconds(work: Path) -> dict[str, float]:
    """Stage wall times from the manifests' finish times (each stage starts when the previous ends)."""
    order = ["scan", "vad", "pack", "asr", "stitch"]
    t = {s: json.loads((work / "manifests" / f"{s}.json").read_text())["finished_at"] for s in order}
    return {s: t[s] - t[prev] for prev, s in zip(order, order[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--turns", type=int, default=24)
    ap.add_argument("--model", type=Path, help="model folder (default: a tiny random Paraformer)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vadpack-ray-") as tmp_s:
        tmp = Path(tmp_s)
        audio_s = make_archive(tmp / "archive", args.files, args.turns)
        model = args.model
        if model is None:
            from vadpack.testkit.tiny import write_tiny_model

            model = write_tiny_model(tmp / "tiny", size="tiny", seed=0)
        one, two = (run(tmp, tmp / "archive", model, w) for w in (1, 2))
        s1, s2 = stage_seconds(one["work"]), stage_seconds(two["work"])
        result = {
            "audio_s": round(audio_s, 1), "files": args.files,
            "wall_s_1_worker": round(one["wall_s"], 2), "wall_s_2_workers": round(two["wall_s"], 2),
            "vad_s_1_worker": round(s1["vad"], 2), "vad_s_2_workers": round(s2["vad"], 2),
            "asr_s_1_worker": round(s1["asr"], 2), "asr_s_2_workers": round(s2["asr"], 2),
            "vad_speedup": round(s1["vad"] / s2["vad"], 2), "asr_speedup": round(s1["asr"] / s2["asr"], 2),
            # Decoding alone, from the first part an actor started to the last one finished:
            # without Ray's start-up and each actor's model load, which dominate a small archive.
            "asr_decode_s_1_worker": round(one["asr"]["decode_window_s"], 2),
            "asr_decode_s_2_workers": round(two["asr"]["decode_window_s"], 2),
            "asr_decode_speedup": round(one["asr"]["decode_window_s"] / two["asr"]["decode_window_s"], 2),
            "tables_identical": one["segments"] == two["segments"],
            "device": f"cpu x{os.cpu_count()}", "date": date.today().isoformat(),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
