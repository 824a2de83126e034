"""engine: ray on a local 2-CPU Ray cluster gives the same tables as the local engine."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

from tests.conftest import write_config

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
