"""Forced work replaces, it never deletes first: ``--force asr`` killed with SIGKILL at named points keeps
every old result, and the next plain run decodes only what the forced run had not yet decoded again,
ending with tables equal to a run from nothing.

The run kills itself at a named point (``VADPACK_FAULTS=kill_at=POINT:N``, core/faults.py), so each
case stops at the same state on any machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from vadpack.pipeline.cli import main

import vadpack
from tests.conftest import REPO, write_config
from tests.support import outputs

SECTIONS = {"packer": {"budget_s": 20, "max_items": 4}, "asr": {"batches_per_part": 1}}


def run_killed_at(cfg: Path, point: str, args: list[str], log: Path) -> int:
    """``vadpack run CONFIG ARGS`` until it kills itself at ``point``; its exit status (-9 when it did)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "VADPACK_FAULTS": f"kill_at={point}"}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "vadpack", "run", str(cfg), "--no-progress", *args],
                                env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        code = proc.wait(timeout=600)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its workers too, as a crash of the machine would take them
    except ProcessLookupError:
        pass
    return code


def stored_rows(work: Path, suffix: str = "") -> int:
    """Rows of the asr store (``suffix`` ""), or of a forced rerun's folder beside it (".forced")."""
    folders = [f for f in (work / "store").glob("asr-*") if f.suffix == suffix]
    return sum(pq.read_metadata(p).num_rows for f in folders for p in f.glob("*.parquet"))


@pytest.fixture(scope="module")
def done_archive(tmp_path_factory, tiny_model):
    """A finished run's config and work_dir (copied per case), and the tables of a run from nothing."""
    tmp = tmp_path_factory.mktemp("forced")
    archive = tmp / "archive"
    archive.mkdir()
    for name in ("en_pyannote_sample.wav", "jfk.flac", "funasr_asr_example_zh.mp3", "en_mfa_stereo.wav"):
        shutil.copy(REPO / "examples" / name, archive / name)
    (tmp / "done").mkdir()
    cfg = write_config(tmp / "done", [str(archive)], tiny_model, **SECTIONS)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    return archive, tmp / "done" / "work", outputs.snapshot(tmp / "done" / "work" / "output", with_batch_ids=True)


def copy_of_done(tmp_path: Path, done_archive, model: Path) -> tuple[Path, Path, dict]:
    """A config and a copy of the finished run's work_dir in ``tmp_path``, and the reference tables."""
    archive, done_work, reference = done_archive
    cfg = write_config(tmp_path, [str(archive)], model, **SECTIONS)
    shutil.copytree(done_work, tmp_path / "work")
    return cfg, tmp_path / "work", reference


# Invariant: at every point, the old results are all there until the new ones replace them.
KILLS = [("asr.part_written:2", ["--force", "asr"]),
         pytest.param("asr.started:1", ["--force", "asr"], marks=pytest.mark.slow),
         pytest.param("stitch.started:1", ["--force", "asr"], marks=pytest.mark.slow),
         pytest.param("asr.part_written:1", ["--from", "pack", "--force"], marks=pytest.mark.slow)]


@pytest.mark.parametrize(("point", "args"), KILLS)
def test_forced_asr_killed_keeps_results_and_the_next_run_finishes_it(tmp_path, done_archive, tiny_model, point,
                                                                     args):
    cfg, work, reference = copy_of_done(tmp_path, done_archive, tiny_model)
    n_segments = stored_rows(work)
    code = run_killed_at(cfg, point, args, tmp_path / "killed.log")
    assert code == -signal.SIGKILL, f"not killed at {point} (exit {code}):\n" + (tmp_path / "killed.log").read_text()

    redone = stored_rows(work, ".forced")
    if point.startswith("stitch"):  # the new results were swapped in; nothing old is left to replace
        assert redone == 0 and stored_rows(work) == n_segments
    else:
        assert stored_rows(work) == n_segments  # nothing deleted first
        assert (0 < redone < n_segments) if "part_written" in point else redone == 0
        states = {s.stage: s for s in vadpack.status(cfg)}
        assert states["asr"].state == "missing" and "forced asr rerun is unfinished" in states["asr"].reason

    report = vadpack.run(cfg, log_to_stderr=False)
    # Only what the forced run had not decoded again yet is decoded now.
    assert report.summary.decoded_segments == (0 if point.startswith("stitch") else n_segments - redone)
    assert outputs.snapshot(work / "output", with_batch_ids=True) == reference
    assert not list((work / "store").glob("asr-*.forced")) and not list((work / "store").glob("asr-*.replaced"))
    assert stored_rows(work) == n_segments  # the old results were replaced, not added to


def test_a_swap_cut_halfway_is_completed_by_the_next_run(tmp_path, done_archive, tiny_model):
    # The state between finish_replacement's two renames: the old store moved aside, the complete new
    # one not yet in its place. No fault point stops a run there, so the folders are laid out as it left them.
    cfg, work, reference = copy_of_done(tmp_path, done_archive, tiny_model)
    n_segments = stored_rows(work)
    (store,) = [f for f in (work / "store").glob("asr-*") if not f.suffix]
    shutil.copytree(store, store.with_name(store.name + ".forced"))
    store.rename(store.with_name(store.name + ".replaced"))
    report = vadpack.run(cfg, log_to_stderr=False)
    assert report.summary.decoded_segments == 0 and stored_rows(work) == n_segments
    assert sorted(f.name for f in (work / "store").iterdir()) == [store.name]
    assert outputs.snapshot(work / "output", with_batch_ids=True) == reference


def test_forced_asr_killed_halfway_through_its_swap_is_completed_by_the_next_run(tmp_path, done_archive,
                                                                                 tiny_model):
    cfg, work, reference = copy_of_done(tmp_path, done_archive, tiny_model)
    n_segments = stored_rows(work)
    code = run_killed_at(cfg, "store.moved_aside:1", ["--force", "asr"], tmp_path / "killed.log")
    assert code == -signal.SIGKILL, f"not killed (exit {code}):\n" + (tmp_path / "killed.log").read_text()
    # The old results are aside, the new ones complete beside them; neither is lost.
    assert stored_rows(work) == 0 and stored_rows(work, ".replaced") == stored_rows(work, ".forced") == n_segments
    report = vadpack.run(cfg, log_to_stderr=False)
    assert report.summary.decoded_segments == 0 and stored_rows(work) == n_segments
    assert [f.suffix for f in (work / "store").iterdir()] == [""]
    assert outputs.snapshot(work / "output", with_batch_ids=True) == reference


def tree(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: (size, mtime_ns) by relative path (the work_dir lock, which
    prune and status take, by name only)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            if p.name != ".vadpack.lock" else () for p in sorted(root.rglob("*"))}


def test_prune_dry_run_and_status_create_no_folder_and_no_file(tmp_path, done_archive, tiny_model):
    # Another model (new bytes in its folder): its store does not exist yet, and looking it up must not make it.
    archive, done_work, _ = done_archive
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "NOTES.txt").write_text("another model\n")
    cfg = write_config(tmp_path, [str(archive)], model, **SECTIONS)
    shutil.copytree(done_work, tmp_path / "work")
    before = tree(tmp_path)
    assert main(["prune", str(cfg), "--dry-run"]) == 0
    assert main(["status", str(cfg)]) == 0
    assert tree(tmp_path) == before
