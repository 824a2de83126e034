"""kill -9 at named points of vad, asr and stitch, then rerun: the final tables equal an uninterrupted run's.

The run kills itself (``VADPACK_FAULTS=kill_at=POINT:N``, core/faults.py) with a real SIGKILL when it
reaches the named point for the Nth time, so each case stops at the same state on any machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

from tests.conftest import REPO, write_config
from tests.support import outputs

TABLES = tuple(OUTPUT_SCHEMAS)  # every public table
SECTIONS = {"packer": {"budget_s": 20, "max_items": 4}, "asr": {"batches_per_part": 1}, "vad": {"workers": 2}}


def snapshot(out: Path) -> dict[str, list[tuple]]:
    return outputs.snapshot(out, with_batch_ids=True)  # a resumed run decodes the very same batches


def units_done(work: Path, phase: str) -> int:
    """How many units of ``phase`` are committed: vad result sidecars, or asr part files in the store."""
    if phase == "vad":
        return len(list((work / "pcm").glob("*.vad.json")))
    return len(list((work / "store").glob("asr-*/part-*.parquet")))


def run_killed_at(cfg: Path, point: str, log: Path) -> int:
    """Run ``vadpack run`` until it kills itself at ``point``; its exit status (-SIGKILL when it did).

    The run has its own process group: once it is dead, its workers go too (kill -9 of the group, as
    a crash of the machine would take them), so no orphan writes beside the rerun.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "VADPACK_FAULTS": f"kill_at={point}"}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "vadpack", "run", str(cfg), "--no-progress"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        code = proc.wait(timeout=600)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # no worker outlived it
    return code


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
    cfg = write_config(ref_dir, [str(archive)], tiny_model, **SECTIONS)
    assert main(["run", str(cfg), "--no-progress"]) == 3
    work = ref_dir / "work"
    return archive, snapshot(work / "output"), {"vad": units_done(work, "vad"), "asr": units_done(work, "asr")}


# (point, N): N "last" is the phase's last unit (its stage then dies before its manifest).
KILLS = [
    ("asr.part_written", 2),
    pytest.param("vad.recording_done", 1, marks=pytest.mark.slow),
    pytest.param("vad.recording_done", "last", marks=pytest.mark.slow),
    pytest.param("asr.started", 1, marks=pytest.mark.slow),
    pytest.param("asr.part_written", "last", marks=pytest.mark.slow),
    pytest.param("stitch.table_written", 4, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("point", "nth"), KILLS)
def test_kill_and_resume_gives_identical_tables(tmp_path, archive_and_reference, tiny_model, point, nth):
    archive, reference, units = archive_and_reference
    cfg = write_config(tmp_path, [str(archive)], tiny_model, **SECTIONS)
    work = tmp_path / "work"
    phase = point.split(".")[0]
    n = units[phase] if nth == "last" else nth
    code = run_killed_at(cfg, f"{point}:{n}", tmp_path / "killed.log")
    assert code == -signal.SIGKILL, f"the run was not killed at {point}:{n} (exit {code}):\n" + \
        (tmp_path / "killed.log").read_text()
    if phase == "asr":  # the store holds exactly the parts written before the kill
        assert units_done(work, "asr") == (0 if point == "asr.started" else n)
    elif phase == "vad":  # the other worker may have committed one more
        assert n <= units_done(work, "vad") <= units["vad"]
    assert main(["run", str(cfg), "--no-progress"]) == 3
    got = snapshot(work / "output")
    for name in TABLES:
        assert len(set(got[name])) == len(got[name]), f"{name}: duplicate rows after resume"
    assert got == reference, f"tables differ from the uninterrupted run (killed at {point}:{n})"
    leftovers = [p for p in work.rglob(".*.tmp-*")]
    assert leftovers == [], f"orphan temp files after the rerun: {leftovers}"
    print(f"[crash] killed at {point}:{n}; rows lost or duplicated: 0")
