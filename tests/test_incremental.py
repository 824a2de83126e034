"""A living archive, through the CLI and the API: new, changed, renamed and deleted recordings cost
only their own work, and after every step the tables equal a from-scratch run on the archive as it
now stands (only ``segments.batch_id``, the batch a segment was decoded in, may differ).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main

import vadpack
from tests.conftest import REPO, write_config
from tests.support.outputs import snapshot
from tests.support.synthetic import synthetic_meeting

TABLES = tuple(OUTPUT_SCHEMAS)  # every public table
SR = 16_000
pytestmark = pytest.mark.slow  # many whole-pipeline runs per test: the full lane (make test-all)


def make_config(folder: Path, inputs: list[str], model: Path, **sections) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, inputs, model, **sections)


def clip(folder: Path, name: str, seed: int) -> Path:
    """A short synthetic conversation (two turns of speech-like bursts) as a 16 kHz wav."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, synthetic_meeting(seed, n_turns=2, monologue_every=99).pcm, SR, subtype="PCM_16")
    return path


def tables(out: Path) -> dict[str, list[tuple]]:
    return snapshot(out)


def from_scratch(tmp_path: Path, archive: Path, model: Path, tag: str) -> dict[str, list[tuple]]:
    cfg = make_config(tmp_path / f"scratch-{tag}", [str(archive)], model)
    vadpack.run(cfg)
    return tables(tmp_path / f"scratch-{tag}" / "work" / "output")


def speech_s(out: Path, names: set[str]) -> float:
    """Seconds of speech (sum of segment lengths) of the recordings whose file name is in ``names``."""
    docs = pq.read_table(out / "documents.parquet").to_pylist()
    return sum(d["speech_s"] for d in docs if Path(d["path"]).name in names)


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    for name in ("jfk.flac", "en_pyannote_sample.wav", "funasr_asr_example_zh.mp3"):
        (root / "talks").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "examples" / name, root / "talks" / name)
    for i in range(4):
        clip(root / "calls", f"call{i}.wav", seed=100 + i)
    return root


def test_every_change_costs_only_its_own_work(tmp_path, archive, tiny_model, capsys) -> None:
    cfg = make_config(tmp_path / "live", [str(archive)], tiny_model)
    out = tmp_path / "live" / "work" / "output"
    first = vadpack.run(cfg)
    assert first.summary["decoded_segments"] == first.summary["segments"] > 0
    assert first.summary["reused_segments"] == 0

    # (a) New files: only their speech is decoded.
    clip(archive / "calls", "call_new.wav", seed=7)
    clip(archive / "late", "late.wav", seed=8)
    report = vadpack.run(cfg)
    assert report.summary["decoded_audio_s"] == pytest.approx(speech_s(out, {"call_new.wav", "late.wav"}), abs=1e-6)
    assert report.summary["reused_segments"] == first.summary["segments"]
    assert tables(out) == from_scratch(tmp_path, archive, tiny_model, "a")

    # (b) Another packing budget: no decoding at all, padding invariance keeps every result.
    report = vadpack.run(cfg, overrides=["packer.budget_s=13"])
    assert report.summary["decoded_segments"] == 0 and "pack" in report.stages_run
    assert tables(out) == from_scratch(tmp_path, archive, tiny_model, "b")

    # (c) A renamed folder: the files are recognised by their content.
    old_exports = {p.relative_to(out / "srt").as_posix() for p in out.glob("srt/calls/*.srt")}
    (archive / "calls").rename(archive / "phone-calls")
    report = vadpack.run(cfg)
    assert report.summary["decoded_segments"] == 0
    new_exports = {p.relative_to(out / "srt").as_posix() for p in out.glob("srt/phone-calls/*.srt")}
    # The exports mirror the input folders: they move with the folder, and the old ones are gone.
    assert {e.split("/", 1)[1] for e in new_exports} == {e.split("/", 1)[1] for e in old_exports} != set()
    assert not (out / "srt" / "calls").exists()
    assert tables(out) == from_scratch(tmp_path, archive, tiny_model, "c")

    # (d) One file modified: it alone is decoded again.
    clip(archive / "phone-calls", "call1.wav", seed=55)
    report = vadpack.run(cfg)
    assert report.summary["decoded_audio_s"] == pytest.approx(speech_s(out, {"call1.wav"}), abs=1e-6)
    assert tables(out) == from_scratch(tmp_path, archive, tiny_model, "d")

    # (e) A deleted file leaves every table and its exports.
    (archive / "talks" / "jfk.flac").unlink()
    report = vadpack.run(cfg)
    assert report.summary["decoded_segments"] == 0
    snap = tables(out)
    assert not any("jfk" in str(row) for name in TABLES for row in snap[name])
    assert not list(out.glob("*/**/jfk*"))
    assert snap == from_scratch(tmp_path, archive, tiny_model, "e")

    # prune: the deleted and modified files' cache and results go, the rest stays and is enough.
    capsys.readouterr()
    assert main(["prune", str(cfg)]) == 0
    said = capsys.readouterr().out
    assert "pcm cache" in said and "unused results" in said
    assert [s.state for s in vadpack.status(cfg)] == ["done"] * 6
    assert vadpack.run(cfg, stage="stitch").stages_run == ("stitch",)
    assert tables(out) == snap
    assert main(["status", str(cfg)]) == 0
    assert "pcm cache" in capsys.readouterr().out


def test_new_weights_make_asr_stale_and_force_redoes_the_work(tmp_path, archive, tiny_model, capsys) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    cfg = make_config(tmp_path / "live", [str(archive)], model)
    first = vadpack.run(cfg)
    # Same folder, new weights: nothing about the path changed, yet asr is stale and says why.
    from vadpack.testkit.tiny import write_tiny_model

    write_tiny_model(tmp_path / "other", size="tiny", seed=1)
    shutil.copy(tmp_path / "other" / "model.pt", model / "model.pt")
    states = {s.stage: s for s in vadpack.status(cfg)}
    assert states["asr"].state == "stale" and states["asr"].reason == "model changed"
    capsys.readouterr()
    assert main(["status", str(cfg)]) == 0
    assert "model changed" in capsys.readouterr().out
    report = vadpack.run(cfg)
    assert report.summary["decoded_segments"] == first.summary["segments"]
    # Up to date now; --force asr decodes every segment again anyway, with the same results.
    before = tables(tmp_path / "live" / "work" / "output")
    assert vadpack.run(cfg).stages_run == ()
    capsys.readouterr()
    assert main(["run", str(cfg), "--force", "asr", "--no-progress"]) == 0
    assert f"decoded        {first.summary['segments']} segments" in capsys.readouterr().out
    assert tables(tmp_path / "live" / "work" / "output") == before


def test_keep_pcm_off_drops_transcribed_audio_and_brings_it_back_when_needed(tmp_path, archive,
                                                                             tiny_model) -> None:
    cfg = make_config(tmp_path / "live", [str(archive)], tiny_model, vad={"workers": 1, "keep_pcm": False})
    vadpack.run(cfg)
    pcm = tmp_path / "live" / "work" / "pcm"
    assert not list(pcm.glob("*.s16")) and list(pcm.glob("*.vad.json"))
    before = tables(tmp_path / "live" / "work" / "output")
    # Another model needs the audio again: it is decoded anew, and the tables are right.
    report = vadpack.run(cfg, overrides=["asr.pad_invariant=false"])
    assert report.summary["decoded_segments"] == report.summary["segments"] > 0
    assert not list(pcm.glob("*.s16"))
    report = vadpack.run(cfg)  # back to the first settings: their store is still there
    assert report.summary["decoded_segments"] == 0
    assert tables(tmp_path / "live" / "work" / "output") == before


def test_a_second_run_on_the_same_work_dir_exits_2_naming_the_lock(tmp_path, archive, tiny_model, capsys) -> None:
    cfg = make_config(tmp_path / "live", [str(archive)], tiny_model)
    lock = tmp_path / "live" / "work" / ".vadpack.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", str(cfg), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert str(lock) in err and str(holder.pid) in err and "Traceback" not in err
        assert not (tmp_path / "live" / "work" / "recordings.parquet").exists()  # no work was done
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed: its lock is stale and the next run takes it over.
    assert main(["run", str(cfg), "--no-progress"]) == 0
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at the end of the run
    finally:
        os.close(fd)


@pytest.mark.parametrize("nth", [1, 2])
def test_kill_during_an_incremental_run_then_rerun(tmp_path, archive, tiny_model, nth) -> None:
    cfg = make_config(tmp_path / "live", [str(archive)], tiny_model, asr={"batches_per_part": 1},
                       packer={"budget_s": 10, "max_items": 2})
    vadpack.run(cfg)
    for i in range(3):
        clip(archive / "more", f"extra{i}.wav", seed=200 + i)
    (archive / "talks" / "jfk.flac").rename(archive / "talks" / "jfk-renamed.flac")
    store = tmp_path / "live" / "work" / "store"
    parts_before = len(list(store.glob("asr-*/part-*.parquet")))
    # kill -9 as the grown archive's nth new part is written (core/faults.py: the run kills itself there).
    env = {**os.environ, "PYTHONPATH": str(REPO), "VADPACK_FAULTS": f"kill_at=asr.part_written:{nth}"}
    proc = subprocess.run([sys.executable, "-m", "vadpack", "run", str(cfg), "--no-progress"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed (exit {proc.returncode}):\n{proc.stderr}"
    assert len(list(store.glob("asr-*/part-*.parquet"))) == parts_before + nth
    assert main(["run", str(cfg), "--no-progress"]) == 0
    got = tables(tmp_path / "live" / "work" / "output")
    for name in TABLES:
        assert len(set(got[name])) == len(got[name]), f"{name}: duplicate rows after resume"
    assert got == from_scratch(tmp_path, archive, tiny_model, f"kill{nth}")
    assert not list((tmp_path / "live").rglob(".*.tmp-*"))


def test_a_copy_under_another_name_is_decoded_once(tmp_path, archive, tiny_model) -> None:
    shutil.copy(archive / "calls" / "call0.wav", archive / "calls" / "call0-copy.wav")
    cfg = make_config(tmp_path / "live", [str(archive)], tiny_model)
    report = vadpack.run(cfg)
    docs = pq.read_table(tmp_path / "live" / "work" / "output" / "documents.parquet").to_pylist()
    texts = {Path(d["path"]).name: d["text"] for d in docs}
    assert texts["call0.wav"] == texts["call0-copy.wav"]
    per_file = {Path(d["path"]).name: d["n_segments"] for d in docs}
    # Counted in segments, as status and the log count them: both copies' segments got their transcript in
    # this run, but the model decoded the shared spans once.
    assert report.summary.decoded_segments == sum(per_file.values())
    assert report.summary.asr is not None
    assert report.summary.asr.decoding.segments == sum(per_file.values()) - per_file["call0-copy.wav"]
    assert np.isclose(report.summary["decoded_audio_s"], speech_s(tmp_path / "live" / "work" / "output",
                                                                    set(per_file) - {"call0-copy.wav"}))


def test_a_model_is_hashed_once_not_once_per_work_dir(tmp_path, archive, tiny_model, monkeypatch) -> None:
    import vadpack.pipeline.store as store

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    hashed: list[str] = []
    real_hash = store.file_content_id
    monkeypatch.setattr(store, "file_content_id", lambda path: hashed.append(Path(path).name) or real_hash(path))
    first = vadpack.run(make_config(tmp_path / "one", [str(archive)], model))
    assert sorted(hashed) == sorted(p.name for p in model.iterdir())  # each file of the folder, once
    hashed.clear()
    second = vadpack.run(make_config(tmp_path / "two", [str(archive)], model))  # a new work_dir
    assert hashed == [] and second.summary["decoded_segments"] == first.summary["decoded_segments"]
    # A folder that is gone leaves the cache at its next write; a cache that cannot be written costs a hash.
    cache = Path(os.environ["VADPACK_CACHE_DIR"]) / "model_ids.json"
    gone = tmp_path / "gone"
    shutil.copytree(model, gone)
    store.model_identity(str(gone))
    shutil.rmtree(gone)
    (model / "model.pt").touch()  # a new stamp: hashed again, and the cache rewritten
    assert store.model_identity(str(model)).startswith("local:")
    assert str(gone) not in json.loads(cache.read_text()) and str(model) in json.loads(cache.read_text())
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    assert store.model_identity(str(model), blocked / "model_ids.json") == store.model_identity(str(model))
