"""The README's DuckDB queries run as written on a pipeline output (the demo's tables' shape)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from vadpack.pipeline.cli import main

from tests.conftest import REPO, write_config


def readme_queries() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Querying the output", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)


def test_readme_queries_run_on_pipeline_output(tmp_path, small_archive, tiny_model):
    queries = readme_queries()
    assert len(queries) >= 3
    # Speakers on, so the talk-time-per-speaker query has rows to show.
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model, speakers={"enabled": True, "device": "cpu"})
    assert main(["run", str(cfg), "--no-progress"]) == 3
    out = str(tmp_path / "work" / "output")
    results = [duckdb.execute(q.replace("runs/demo/output", out)).fetchall() for q in queries]
    talk, tokens, silences, failures, per_speaker = results
    assert len(talk) == 4 and all(row[3] is not None for row in talk)
    assert tokens and all(row[3] <= row[4] for row in tokens)
    assert silences == sorted(silences, key=lambda r: -r[3])
    assert len(failures) == 1 and "not an audio file" in failures[0][3]
    # Every speech recording has speakers, and their shares of its speech add up to 100 %.
    shares: dict[str, float] = {}
    for path, speaker, _, pct, n_turns, _ in per_speaker:
        assert speaker.startswith("S") and n_turns >= 1
        shares[path] = shares.get(path, 0.0) + pct
    assert len(shares) == 3 and all(abs(v - 100) < 0.5 for v in shares.values())


def test_readme_queries_run_in_the_duckdb_shell(tmp_path, small_archive, tiny_model):
    # The README tells people to paste the queries into `.venv/bin/duckdb` (the dev extra's duckdb-cli).
    shell = Path(sys.executable).with_name("duckdb")
    if not shell.exists():
        pytest.skip(f"no DuckDB shell at {shell}: `make setup` installs duckdb-cli with the dev extra")
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model, speakers={"enabled": True, "device": "cpu"})
    assert main(["run", str(cfg), "--no-progress"]) == 3
    out = str(tmp_path / "work" / "output")
    for query in readme_queries():
        done = subprocess.run([str(shell), "-c", query.replace("runs/demo/output", out)], capture_output=True,
                              text=True)
        assert done.returncode == 0 and "Error" not in done.stderr, done.stderr
