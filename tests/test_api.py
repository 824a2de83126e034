"""The public Python API: ``import vadpack``, run the demo archive, read the tables back."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import vadpack
from tests.conftest import REPO, write_config


def test_version_is_importable_from_a_fresh_interpreter() -> None:
    out = subprocess.run([sys.executable, "-c", "import vadpack; print(vadpack.__version__)"],
                         capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == vadpack.__version__
    assert vadpack.__version__.count(".") == 2


def test_demo_archive_through_the_api(tmp_path, tiny_model) -> None:
    archive = tmp_path / "examples"
    shutil.copytree(REPO / "examples", archive)
    cfg_path = write_config(tmp_path, [str(archive)], tiny_model)
    report = vadpack.run(cfg_path)
    assert report.stages_run == ("scan", "vad", "speakers", "pack", "asr", "stitch")
    assert report.failed == 0
    tables = vadpack.read_tables(vadpack.load_config(cfg_path).output_path)
    audio = sorted(p.name for p in archive.iterdir() if p.suffix in (".wav", ".flac", ".mp3", ".ogg", ".m4a"))
    assert sorted(tables.documents["path"].map(lambda p: p.rsplit("/", 1)[1])) == audio
    assert len(tables.segments) == report.summary["segments"] > 0
    assert len(tables.tokens) == int(tables.documents["n_tokens"].sum()) > 0
    assert tables.failures.empty
    # Speakers off (the default): null speaker columns, one turn per segment, no speaker rows.
    assert tables.segments["speaker"].isna().all() and tables.tokens["speaker"].isna().all()
    assert tables.documents["n_speakers"].isna().all() and tables.speakers.empty
    turns = tables.turns.sort_values(["recording_id", "turn_index"]).reset_index(drop=True)
    segs = tables.segments.sort_values(["recording_id", "segment_index"]).reset_index(drop=True)
    same = ["recording_id", "start_s", "end_s", "text"]
    assert turns[same].equals(segs[same])
    assert turns["speaker"].isna().all()
    # A second run finds everything up to date.
    assert vadpack.run(cfg_path).stages_run == ()
    assert [s.state for s in vadpack.status(cfg_path)] == ["done"] * 6


def test_read_tables_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="documents.parquet"):
        vadpack.read_tables(tmp_path)
