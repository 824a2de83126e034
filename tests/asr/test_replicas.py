"""Model replicas: the layout rule, identical tables with 1 and 2 replicas, a replica that dies, and a
compiled encoder that decodes exactly as the eager one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from vadpack.asr.config import AsrConfig
from vadpack.asr.replicas import MIN_AUDIO_S_FOR_CPU_REPLICAS, plan_layout
from vadpack.pipeline.cli import main

from tests.conftest import REPO, write_config
from tests.support.outputs import snapshot

GB = 2**30
LONG = MIN_AUDIO_S_FOR_CPU_REPLICAS  # audio enough for auto to start replicas on the CPU


def test_cpu_auto_layout_is_one_thread_per_core_for_long_work() -> None:
    layout = plan_layout(AsrConfig(device="cpu"), 100, 0, GB, LONG, cores=2, free_bytes=24 * GB)
    assert (layout.replicas, layout.threads, layout.devices) == (2, 1, ("cpu", "cpu"))
    # Short work: one process, every core (a replica costs seconds to start).
    short = plan_layout(AsrConfig(device="cpu"), 100, 0, GB, LONG - 1, cores=2, free_bytes=24 * GB)
    assert (short.replicas, short.threads) == (1, 2)
    # Memory bounds the copies of the model: half of 8 GB holds one 2 x 1.5 GB + overhead replica.
    tight = plan_layout(AsrConfig(device="cpu"), 100, 0, 3 * GB // 2, LONG, cores=16, free_bytes=8 * GB)
    assert tight.replicas == 1 and tight.threads == 16
    # Threads set by hand: replicas fill the cores with them.
    assert plan_layout(AsrConfig(device="cpu", threads=4), 100, 0, GB, LONG, cores=16, free_bytes=64 * GB).replicas == 4


def test_explicit_replicas_and_the_work_cap() -> None:
    two = plan_layout(AsrConfig(device="cpu", replicas=2), 100, 0, GB, 1.0, cores=2, free_bytes=GB)
    assert (two.replicas, two.threads) == (2, 1)  # asked for: no audio or memory rule
    assert plan_layout(AsrConfig(device="cpu", replicas=8), 3, 0, GB, LONG, cores=8).replicas == 3


def test_cuda_auto_uses_every_device_or_the_one_named() -> None:
    every = plan_layout(AsrConfig(device="cuda"), 100, 4, GB, 10.0, cores=16)
    assert every.devices == ("cuda:0", "cuda:1", "cuda:2", "cuda:3") and every.threads == 4
    assert plan_layout(AsrConfig(device="auto"), 100, 2, GB, 10.0, cores=16).replicas == 2
    one = plan_layout(AsrConfig(device="cuda:1"), 100, 4, GB, 10.0, cores=16)
    assert one.devices == ("cuda:1",)
    assert plan_layout(AsrConfig(device="cuda", replicas=4), 100, 2, GB, 10.0, cores=16).devices == (
        "cuda:0", "cuda:1", "cuda:0", "cuda:1")


@pytest.fixture()
def examples(tmp_path: Path) -> Path:
    archive = tmp_path / "examples"
    shutil.copytree(REPO / "examples", archive, ignore=shutil.ignore_patterns("*.md"))
    return archive


def run(tmp_path: Path, name: str, archive: Path, model: Path, **asr) -> tuple[int, Path]:
    folder = tmp_path / name
    folder.mkdir()
    cfg = write_config(folder, [str(archive)], model, asr={"replicas": 1, "threads": 1, **asr},
                       packer={"budget_s": 20, "max_items": 4})
    return main(["run", str(cfg), "--no-progress"]), folder / "work" / "output"


@pytest.mark.slow
def test_one_and_two_replicas_give_identical_tables(tmp_path, examples, tiny_model, capsys) -> None:
    code_1, one = run(tmp_path, "one", examples, tiny_model)
    code_2, two = run(tmp_path, "two", examples, tiny_model, replicas=2)
    assert code_1 == code_2 == 0
    assert "2 replica(s) x 1 thread(s)" in capsys.readouterr().err
    # Invariant: the same batches, decoded by either replica, give the same rows; batch ids included.
    assert snapshot(two, with_batch_ids=True) == snapshot(one, with_batch_ids=True)
    parts = sorted((tmp_path / "two" / "work" / "store").glob("asr-*/part-*.parquet"))
    assert len(parts) >= 2


@pytest.mark.slow
def test_a_replica_that_dies_loses_no_work(tmp_path, examples, tiny_model, monkeypatch, capsys) -> None:
    _, reference = run(tmp_path, "reference", examples, tiny_model)
    monkeypatch.setenv("VADPACK_FAULTS", "asr_replica_crash=1")
    folder = tmp_path / "crash"
    folder.mkdir()
    cfg = write_config(folder, [str(examples)], tiny_model, asr={"replicas": 2, "threads": 1},
                       packer={"budget_s": 20, "max_items": 4})
    assert main(["run", str(cfg), "--no-progress"]) == 1
    assert "asr replica 1 exited" in capsys.readouterr().err
    kept = list((folder / "work" / "store").glob("asr-*/part-*.parquet"))
    assert kept  # what the other replica finished is in the store
    monkeypatch.delenv("VADPACK_FAULTS")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    got = snapshot(folder / "work" / "output")
    assert got == snapshot(reference)
    assert all(len(set(rows)) == len(rows) for rows in got.values())


@pytest.mark.slow
def test_compiled_encoder_decodes_exactly_as_eager(tiny_model: Path) -> None:
    from vadpack.asr.features import pad_features, segment_features
    from vadpack.asr.infer import decode_features
    from vadpack.asr.model import load_model

    from tests.asr.synth import speech_like

    eager = load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2))
    clips = [speech_like(s, seed=i) for i, s in enumerate([1.5, 3.0, 4.2, 7.7, 2.2, 9.1])]
    feats = [segment_features(eager.frontend, c) for c in clips]

    def decode(lm) -> list:
        out = []
        for group in ([0, 1, 2], [3, 4, 5], [5], [0, 3]):  # several shapes: one dynamic graph
            f, n = pad_features([feats[i] for i in group], 560)
            out += decode_features(lm, f, n, [len(clips[i]) // 16 for i in group])
        return out

    expected = decode(eager)
    compiled = load_model(AsrConfig(model=str(tiny_model), device="cpu", threads=2, compile=True))
    assert type(compiled.funasr_model.encoder).__name__ == "OptimizedModule"
    got = decode(compiled)
    # Invariant: compiling changes speed, never a token or a time (float32).
    assert got == expected and sum(len(r.tokens) for r in expected) > 20
    assert np.all([r.ok for r in got])


@pytest.mark.parametrize("n_batches,replicas", [(57, 2), (8, 2), (1000, 2), (333, 3), (5, 8)])
def test_replicas_finish_within_a_batch_of_each_other(n_batches: int, replicas: int) -> None:
    from vadpack.asr.stage import group_sizes

    sizes = group_sizes(n_batches, 16, replicas)
    assert sum(sizes) == n_batches and all(1 <= s <= 16 for s in sizes)
    # Batches of equal cost, groups taken from one queue by whichever replica is free first.
    done = [0] * replicas
    for size in sizes:
        done[done.index(min(done))] += size
    assert max(done) - min(done) <= 1 or max(done) == max(sizes)  # a lone group longer than the rest
    # One process: batches_per_part each, the rest last.
    assert group_sizes(n_batches, 16) == [16] * (n_batches // 16) + ([n_batches % 16] if n_batches % 16 else [])
