"""Stitch rewrites only what changed: after adding, modifying and deleting recordings the tables and
exports equal a stitch from nothing; untouched part files are not rewritten; a stitch killed while
writing leaves the previous tables readable and complete; one recording reads without the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest
from vadpack.core.dataset import read_manifest
from vadpack.core.tables import OUTPUT_SCHEMAS

import vadpack
from bench.archive_scale import STITCH_CHILD, Archive
from tests.support.outputs import snapshot

REPO = Path(__file__).resolve().parents[2]
FORMATS = '["srt", "txt"]'


def stitch(work: Path, out: Path, faults: str | None = None) -> subprocess.CompletedProcess:
    """The real stitch stage (``run_stitch``) in its own process, small parts so there are many buckets."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("VADPACK_FAULTS", None)
    if faults:
        env["VADPACK_FAULTS"] = faults
    child = STITCH_CHILD.replace('"stitch": {', '"stitch": {"partition_rows": 2000, ')
    return subprocess.run([sys.executable, "-c", child, str(work), str(out), FORMATS], env=env,
                          capture_output=True, text=True)


def stitched(work: Path, out: Path) -> dict:
    proc = stitch(work, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def part_files(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*.parquet/*.parquet")}


def duck_rows(out: Path) -> dict[str, list]:
    """Every table as DuckDB reads its folder, rows sorted."""
    return {name: sorted(map(str, duckdb.execute(f"FROM '{out}/{name}.parquet'").fetchall()))
            for name in OUTPUT_SCHEMAS}


@pytest.fixture
def archive(tmp_path) -> Archive:
    arch = Archive(tmp_path / "work", seconds_each=90)
    arch.add([f"r{i:04d}" for i in range(40)], "v0")
    arch.save()
    return arch


def test_each_change_rewrites_only_its_buckets_and_equals_a_stitch_from_nothing(tmp_path, archive):
    live = tmp_path / "live"
    first = stitched(archive.work, live)
    assert first["recordings_rebuilt"] == 40 and first["documents"] == 40
    assert read_manifest(live).n_buckets >= 8  # small parts: several buckets
    steps = {
        "add": lambda: archive.add(["n0001", "n0002"], "v0"),
        "modify": lambda: archive.add(["r0003", "r0017"], "v1"),  # new content under the same id
        "delete": lambda: archive.remove(["r0005", "r0030"]),
    }
    for step, change in steps.items():
        before = part_files(live)
        change()
        archive.save()
        summary = stitched(archive.work, live)
        assert summary["recordings_rebuilt"] == (0 if step == "delete" else 2), step
        assert summary["recordings_removed"] == (2 if step == "delete" else 0), step
        after = part_files(live)
        # Invariant: a part of an untouched bucket is the same file, not rewritten.
        kept = {p for p in after if p in before and after[p] == before[p]}
        assert summary["parts_written"] <= 2 * len(OUTPUT_SCHEMAS) and len(kept) >= len(after) - 14, step
        scratch = tmp_path / f"scratch-{step}"
        stitched(archive.work, scratch)
        assert snapshot(live) == snapshot(scratch), f"{step}: tables or exports differ from a stitch from nothing"
        assert duck_rows(live) == duck_rows(scratch), step
    assert not list(live.glob("*/**/r0005*")) and list(live.glob("srt/**/r0004.srt"))
    nothing = stitched(archive.work, live)
    assert nothing["recordings_rebuilt"] == nothing["parts_written"] == nothing["exports"] == 0


def test_a_stitch_killed_while_writing_leaves_the_previous_tables(tmp_path, archive):
    live = tmp_path / "live"
    stitched(archive.work, live)
    previous, previous_duck = snapshot(live), duck_rows(live)
    archive.add(["r0001", "r0002", "r0003"], "v1")
    archive.remove(["r0010"])
    archive.save()
    proc = stitch(archive.work, live, faults="kill_at=stitch.table_written:3")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # Killed with three parts staged: every reader still sees the previous tables, whole.
    tables = vadpack.read_tables(live, as_arrow=True)
    now = snapshot(live)
    assert {n: now[n] for n in OUTPUT_SCHEMAS} == {n: previous[n] for n in OUTPUT_SCHEMAS}
    assert duck_rows(live) == previous_duck
    assert tables.documents.num_rows == 40
    stitched(archive.work, live)
    stitched(archive.work, tmp_path / "scratch")
    assert snapshot(live) == snapshot(tmp_path / "scratch")
    assert not (live / "_vadpack" / "staging").exists()


def test_read_tables_reads_one_recording(tmp_path, archive):
    live = tmp_path / "live"
    stitched(archive.work, live)
    whole = vadpack.read_tables(live, as_arrow=True)
    one = vadpack.read_tables(live, as_arrow=True, recording_ids=["r0007"])
    for name in OUTPUT_SCHEMAS:
        got, want = getattr(one, name), getattr(whole, name)
        want = want.filter(pc.equal(want["recording_id"], "r0007"))
        assert sorted(map(str, got.to_pylist())) == sorted(map(str, want.to_pylist())), name
    assert one.tokens.num_rows > 0
    with pytest.raises(TypeError, match="recording_ids"):
        vadpack.read_tables(live, recording_ids="r0007")
