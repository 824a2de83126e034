"""kill -9 during vad and during asr, then rerun: the final tables equal an uninterrupted run's.

Set VADPACK_KILL_ROUNDS to run more seeds per phase (default 2 per phase).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from tests.conftest import REPO, write_config

TABLES = ("documents", "segments", "tokens", "failures")
ROUNDS = int(os.environ.get("VADPACK_KILL_ROUNDS", "2"))


def sorted_rows(path: Path) -> list[tuple]:
    table = pq.read_table(path)
    rows = [tuple(str(v) for v in r.values()) for r in table.to_pylist()]
    return sorted(rows)


def snapshot(out: Path) -> dict[str, list[tuple]]:
    snap = {name: sorted_rows(out / f"{name}.parquet") for name in TABLES}
    for fmt_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        snap[fmt_dir.name] = sorted((f.name, f.read_bytes()) for f in fmt_dir.iterdir())
    return snap


def in_phase(work: Path, phase: str) -> bool:
    """Whether a run is inside ``phase``: it has started writing that stage's files, not finished it."""
    manifests = work / "manifests"
    if phase == "vad":
        pcm = work / "pcm"
        return pcm.is_dir() and any(pcm.iterdir()) and not (manifests / "vad.json").exists()
    parts = work / "transcripts"
    return parts.is_dir() and not (manifests / "asr.json").exists()


def run_and_kill(cfg: Path, work: Path, phase: str, rng: random.Random) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", str(cfg), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not in_phase(work, phase) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 1.5))  # a random point inside the phase
    outcome = "killed" if proc.poll() is None else "finished before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return outcome


@pytest.fixture(scope="module")
def archive_and_reference(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("crash")
    archive = tmp / "archive"
    archive.mkdir()
    for f in sorted((REPO / "examples").iterdir()):
        if f.suffix != ".md":
            shutil.copy(f, archive / f.name)
    (archive / "broken.wav").write_bytes(b"RIFF....not really")
    ref_dir = tmp / "reference"
    ref_dir.mkdir()
    cfg = write_config(ref_dir, [str(archive)], tiny_model,
                       packer={"budget_s": 20, "max_items": 4}, asr={"batches_per_part": 1},
                       vad={"workers": 2})
    assert main(["run", str(cfg), "--no-progress"]) == 3
    return archive, snapshot(ref_dir / "work" / "output")


@pytest.mark.parametrize("phase", ["vad", "asr"])
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_kill_and_resume_gives_identical_tables(tmp_path, tiny_model, archive_and_reference, phase, seed):
    archive, reference = archive_and_reference
    cfg = write_config(tmp_path, [str(archive)], tiny_model, packer={"budget_s": 20, "max_items": 4},
                       asr={"batches_per_part": 1}, vad={"workers": 2})
    work = tmp_path / "work"
    outcome = run_and_kill(cfg, work, phase, random.Random(seed))
    assert main(["run", str(cfg), "--no-progress"]) == 3
    got = snapshot(work / "output")
    for name in TABLES:
        assert len(set(got[name])) == len(got[name]), f"{name}: duplicate rows after resume"
    assert got == reference, f"tables differ from the uninterrupted run ({phase}, seed {seed}, {outcome})"
    leftovers = [p for p in work.rglob(".*.tmp-*")]
    assert leftovers == [], f"orphan temp files after the rerun: {leftovers}"
    print(f"[crash] phase={phase} seed={seed} {outcome}; rows lost or duplicated: 0")
