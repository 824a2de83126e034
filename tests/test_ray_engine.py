"""engine: ray on a local 2-CPU Ray cluster gives the same tables as the local engine, also after a
Ctrl-C and a rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

from tests.conftest import REPO, write_config
from tests.pipeline.test_interrupt import INTERRUPTED, ONE_LINE, interrupted_lines
from tests.support import outputs

pytest.importorskip("ray", reason="Ray is not installed: pip install 'vadpack[ray]'")

TABLES = tuple(OUTPUT_SCHEMAS)  # every public table


def content(out, name) -> list[tuple]:
    return sorted(tuple(str(v) for v in r.values()) for r in pq.read_table(out / f"{name}.parquet").to_pylist())


def test_ray_engine_matches_local_engine(tmp_path, small_archive, tiny_model):
    runs = {}
    for engine in ("local", "ray"):
        d = tmp_path / engine
        d.mkdir()
        cfg = write_config(d, [str(small_archive)], tiny_model, engine=engine,
                           ray={"num_cpus": 2, "concurrency": 2}, packer={"budget_s": 20, "max_items": 4})
        assert main(["run", str(cfg), "--no-progress"]) == 3  # the text file fails in both
        runs[engine] = d / "work" / "output"
    for name in TABLES:
        local, ray = content(runs["local"], name), content(runs["ray"], name)
        assert ray == local, f"{name} differs between engines"
    assert len(content(runs["ray"], "segments")) >= 3 and len(content(runs["ray"], "tokens")) > 0
    # The ray engine writes the same content-keyed store as the local one, part by part.
    parts = sorted((tmp_path / "ray" / "work" / "store").glob("asr-*/part-*.parquet"))
    assert len(parts) >= 2
    assert [p.name for p in parts] == sorted(p.name for p in (tmp_path / "local" / "work" / "store").glob(
        "asr-*/part-*.parquet"))


def test_ray_run_interrupted_resumes_to_the_local_tables(tmp_path, small_archive, tiny_model):
    # A Ctrl-C in the Ray driver just after the first part file arrived: the rerun decodes only the
    # parts the store lacks and ends with the tables of an uninterrupted local run, batch ids included.
    sections = {"packer": {"budget_s": 20, "max_items": 4}, "asr": {"batches_per_part": 1},
                "ray": {"num_cpus": 2, "concurrency": 1}}
    for engine in ("local", "ray"):
        (tmp_path / engine).mkdir()
    local = write_config(tmp_path / "local", [str(small_archive)], tiny_model, engine="local", **sections)
    assert main(["run", str(local), "--no-progress"]) == 3  # the text file fails
    cfg = write_config(tmp_path / "ray", [str(small_archive)], tiny_model, engine="ray", **sections)
    code, err = _interrupted_at(cfg, "asr.part_received:1")
    assert code in INTERRUPTED, err
    assert interrupted_lines(err) == ONE_LINE and "Traceback" not in err, err
    work = tmp_path / "ray" / "work"
    assert not (work / "manifests" / "asr.json").exists()
    kept = len(list((work / "store").glob("asr-*/part-*.parquet")))
    assert kept >= 1  # the part the driver had received, at least

    assert main(["run", str(cfg), "--no-progress"]) == 3
    parts = len(list((work / "store").glob("asr-*/part-*.parquet")))
    resumed = json.loads((work / "manifests" / "asr.json").read_text())["summary"]
    assert resumed["engine"] == "ray" and resumed["parts_written"] == parts - kept  # none decoded twice
    ours = outputs.snapshot(work / "output", with_batch_ids=True)
    assert ours == outputs.snapshot(tmp_path / "local" / "work" / "output", with_batch_ids=True)
    assert ours["segments"] and ours["tokens"]


def _as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as tests/pipeline/test_interrupt.py: a foreground command


def _interrupted_at(cfg, point: str) -> tuple[int, str]:
    """``vadpack run`` in its own session until it Ctrl-Cs its process group at ``point``; then any
    process of that group still alive (a Ray worker) is killed, so none writes beside the rerun."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "VADPACK_FAULTS": f"interrupt_at={point}"}
    proc = subprocess.Popen([sys.executable, "-m", "vadpack", "run", str(cfg), "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_as_from_a_terminal)
    _, err = proc.communicate(timeout=600)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.returncode, err
