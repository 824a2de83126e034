"""The whole pipeline on real recordings with the tiny model: tables, reruns and staleness."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import duckdb
import pytest
from vadpack.asr.types import DeviceInfo
from vadpack.core.tables import OUTPUT_SCHEMAS
from vadpack.pipeline.cli import main
from vadpack.pipeline.config import config_from_dict, load_config
from vadpack.pipeline.runner import Runner
from vadpack.pipeline.stages import budget_basis

from tests.conftest import write_config

TABLES = tuple(OUTPUT_SCHEMAS)  # every public table


@pytest.fixture()
def finished_run(tmp_path, small_archive, tiny_model):
    cfg_path = write_config(tmp_path, [str(small_archive)], tiny_model)
    code = main(["run", str(cfg_path), "--no-progress"])
    return cfg_path, load_config(cfg_path), code


def q(sql: str, *params):
    return duckdb.execute(sql, list(params)).fetchall()


def test_run_writes_every_table_readable_by_duckdb(finished_run):
    _, cfg, code = finished_run
    assert code == 3  # one input is a text file: some inputs failed
    out = cfg.output_path
    for name in TABLES:
        path = str(out / f"{name}.parquet")
        # Round trip: DuckDB reads what pyarrow wrote (a folder of part files), with the same row count.
        import pyarrow.parquet as pq

        assert q("select count(*) from read_parquet(?)", path)[0][0] == pq.read_table(path).num_rows
    docs = q("select path, duration_s, n_segments, text, status from read_parquet(?) order by path",
             str(out / "documents.parquet"))
    assert [d[0].rsplit("/", 1)[1] for d in docs] == ["en_pyannote_sample.wav", "funasr_asr_example_zh.mp3",
                                                     "jfk.flac", "silence.wav"]
    assert all(d[1] > 0 for d in docs)
    silence = docs[-1]
    assert silence[2] == 0 and silence[3] == "" and silence[4] == "ok"  # no speech: still a document
    speech = [d for d in docs if d[2] > 0]
    assert len(speech) == 3


def test_non_audio_input_is_a_failure_row_with_a_reason(finished_run):
    _, cfg, _ = finished_run
    rows = q("select path, stage, error from read_parquet(?)", str(cfg.output_path / "failures.parquet"))
    assert len(rows) == 1
    path, stage, error = rows[0]
    assert path.endswith("notes.mp3") and stage == "scan"
    assert "not an audio file" in error


def test_segments_and_tokens_respect_their_bounds(finished_run):
    _, cfg, _ = finished_run
    out = cfg.output_path
    bad_segments = q("""
        select s.recording_id, s.segment_index from read_parquet(?) s join read_parquet(?) d using (recording_id)
        where not (0 <= s.start_s and s.start_s < s.end_s and s.end_s <= d.duration_s + 1e-9
                   and s.end_s - s.start_s <= 30 + 1e-9)""", str(out / "segments.parquet"),
                     str(out / "documents.parquet"))
    assert bad_segments == []
    bad_tokens = q("""
        select t.* from read_parquet(?) t join read_parquet(?) s using (recording_id, segment_index)
        where not (s.start_s <= t.start_s and t.start_s <= t.end_s and t.end_s <= s.end_s)""",
                   str(out / "tokens.parquet"), str(out / "segments.parquet"))
    assert bad_tokens == []
    assert q("select count(*) from read_parquet(?)", str(out / "tokens.parquet"))[0][0] > 0


def test_words_table_agrees_with_documents_and_segments(finished_run):
    _, cfg, _ = finished_run
    out = cfg.output_path
    tables = {name: str(out / f"{name}.parquet") for name in ("documents", "segments", "words", "tokens")}
    n_words = q("select count(*) from read_parquet(?)", tables["words"])[0][0]
    assert n_words > 0
    assert q("select sum(n_words) from read_parquet(?)", tables["documents"])[0][0] == n_words
    assert q("select sum(n_words) from read_parquet(?)", tables["segments"])[0][0] == n_words
    # words_per_minute counts words, not tokens.
    bad_wpm = q("select recording_id from read_parquet(?) where speech_s > 0 and "
                "abs(words_per_minute - n_words / (speech_s / 60)) > 1e-9", tables["documents"])
    assert bad_wpm == []
    # Invariant: every word lies inside its segment and covers the tokens it was made of.
    outside = q("""select w.* from read_parquet(?) w join read_parquet(?) s using (recording_id, segment_index)
                   where not (s.start_s <= w.start_s and w.start_s <= w.end_s and w.end_s <= s.end_s)""",
                tables["words"], tables["segments"])
    assert outside == []
    assert n_words <= q("select count(*) from read_parquet(?)", tables["tokens"])[0][0]


def test_second_run_skips_every_stage(finished_run, capsys):
    cfg_path, cfg, _ = finished_run
    capsys.readouterr()
    assert main(["run", str(cfg_path), "--no-progress"]) == 3
    assert "all stages up to date" in capsys.readouterr().out
    assert [s.state for s in Runner(cfg).status()] == ["done"] * 6


def test_a_run_with_nothing_to_do_imports_no_torch_and_opens_no_model(finished_run, tmp_path, tiny_model,
                                                                      capsys):
    """Nothing new: the run is a listing and a few manifests (no torch import: seconds of CPU at each
    run of a large archive); preflight checks only what the stages that will run need. A broken model
    folder is still found before any stage runs (exit 2, naming the file)."""
    cfg_path, cfg, _ = finished_run
    script = ("import sys\nfrom vadpack.pipeline.cli import main\n"
              f"code = main(['run', {str(cfg_path)!r}, '--no-progress', '-q'])\n"
              "print(code, 'torch' in sys.modules)\n")
    # asr.device auto: the CPU is known without torch where no GPU can be (core.device.no_gpu_here).
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for device in ("cpu", "auto"):
        path = write_config(tmp_path, [str(cfg.inputs[0])], tiny_model, asr={"device": device})
        assert path == cfg_path
        if device == "auto":  # asr.device is one of asr's settings: the new value decodes nothing new ...
            assert main(["run", str(cfg_path), "--no-progress", "-q"]) == 3
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.split()[-2:] == ["3", "False"], out.stdout + out.stderr
    shutil.copytree(tiny_model, tmp_path / "model")
    (tmp_path / "model" / "am.mvn").unlink()
    write_config(tmp_path, [str(cfg.inputs[0])], tmp_path / "model", asr={"device": "auto"})
    # A folder's files are its identity: without am.mvn asr has to decode again, so preflight looks at
    # the folder before any stage runs.
    assert {s.stage: s.state for s in Runner(load_config(cfg_path)).status()}["asr"] == "stale"
    capsys.readouterr()
    assert main(["run", str(cfg_path), "--no-progress", "-q"]) == 2
    assert "am.mvn" in capsys.readouterr().err


def test_no_gpu_here_is_true_where_cuda_visible_devices_hides_every_device(monkeypatch):
    from vadpack.core.device import GPU_DEVICE_FILES, no_gpu_here

    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert no_gpu_here()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    if sys.platform.startswith("linux"):  # no device file a GPU driver makes: surely none (else: ask torch)
        assert no_gpu_here() == (not any(os.path.exists(f) for f in GPU_DEVICE_FILES))


def test_single_stage_rerun_leaves_upstream_untouched(finished_run, capsys):
    cfg_path, cfg, _ = finished_run
    work = cfg.work_path
    upstream = [work / "recordings.parquet", work / "segments.parquet", work / "vad_recordings.parquet",
                work / "manifests" / "vad.json", *sorted((work / "pcm").iterdir())]
    before = {p: p.stat().st_mtime_ns for p in upstream}
    batches_before = (work / "batches.parquet").stat().st_mtime_ns
    assert main(["run", str(cfg_path), "--stage", "pack", "--no-progress"]) == 3
    assert {p: p.stat().st_mtime_ns for p in upstream} == before
    assert (work / "batches.parquet").stat().st_mtime_ns != batches_before
    # Every segment already has its transcript in the store: nothing is left to pack, so the asr
    # rerun that follows decodes nothing and stitch, whose inputs did not change, stays done.
    states = {s.stage: s.state for s in Runner(cfg).status()}
    assert states == {"scan": "done", "vad": "done", "speakers": "done", "pack": "done", "asr": "stale",
                      "stitch": "stale"}
    capsys.readouterr()
    assert main(["run", str(cfg_path), "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "decoded        0 segments" in out and "(asr)" in out
    assert [s.state for s in Runner(cfg).status()] == ["done"] * 6


def test_changed_packer_setting_makes_pack_and_later_stale_not_vad(finished_run):
    cfg_path, _, _ = finished_run
    changed = load_config(cfg_path, ["packer.budget_s=30"])
    states = {s.stage: s.state for s in Runner(changed).status()}
    # speakers reads only vad's segments: a packer setting leaves it done.
    assert states == {"scan": "done", "vad": "done", "speakers": "done", "pack": "stale", "asr": "stale",
                      "stitch": "stale"}


def test_pack_is_keyed_by_the_budget_it_resolves_to(finished_run):
    cfg_path, cfg, _ = finished_run
    manifest = json.loads((cfg.work_path / "manifests" / "pack.json").read_text())
    assert manifest["summary"]["budget_s"] == 60.0  # the resolved number is recorded
    # auto resolves to the CPU budget here: writing either form changes nothing ...
    for same in ("packer.budget_s=auto", "packer.budget_s=60", "packer.budget_s=60.0"):
        assert {s.stage: s.state for s in Runner(load_config(cfg_path, [same])).status()}["pack"] == "done"
    # ... while another number does.
    assert {s.stage: s.state for s in Runner(load_config(cfg_path, ["packer.budget_s=61"])).status()}["pack"] == \
        "stale"


def test_auto_budget_basis_follows_the_device():
    # On CUDA the budget is measured, so the device, model and dtype key the pack, not the word "auto".
    auto = config_from_dict({"inputs": ["a.wav"], "work_dir": "w", "packer": {"budget_s": "auto"}})
    h200 = DeviceInfo("cuda", "NVIDIA H200", 150_000_000_000)
    a10 = DeviceInfo("cuda", "NVIDIA A10", 24_000_000_000)
    cpu = DeviceInfo("cpu", "cpu")
    bases = {budget_basis(auto, d) for d in (h200, a10, cpu)}
    assert len(bases) == 3 and budget_basis(auto, cpu) == "60"
    bf16 = config_from_dict({"inputs": ["a.wav"], "work_dir": "w", "packer": {"budget_s": "auto"},
                             "asr": {"dtype": "bfloat16"}})
    assert budget_basis(bf16, h200) != budget_basis(auto, h200)
    fixed = config_from_dict({"inputs": ["a.wav"], "work_dir": "w", "packer": {"budget_s": 300}})
    assert budget_basis(fixed, h200) == budget_basis(fixed, cpu) == "300"


def test_from_reruns_that_stage_and_all_after_it(finished_run):
    cfg_path, cfg, _ = finished_run
    work = cfg.work_path
    vad_manifest = (work / "manifests" / "vad.json").stat().st_mtime_ns
    asr_manifest = (work / "manifests" / "asr.json").stat().st_mtime_ns
    docs = q("select * from read_parquet(?) order by recording_id", str(cfg.output_path / "documents.parquet"))
    assert main(["run", str(cfg_path), "--from", "asr", "--no-progress"]) == 3
    assert (work / "manifests" / "vad.json").stat().st_mtime_ns == vad_manifest
    assert (work / "manifests" / "asr.json").stat().st_mtime_ns != asr_manifest
    # Same inputs, same model: the rerun reproduces the documents exactly.
    assert q("select * from read_parquet(?) order by recording_id",
             str(cfg.output_path / "documents.parquet")) == docs


def test_stage_before_its_inputs_is_a_usage_error(tmp_path, small_archive, tiny_model, capsys):
    cfg_path = write_config(tmp_path, [str(small_archive)], tiny_model)
    assert main(["run", str(cfg_path), "--stage", "pack", "--no-progress"]) == 2
    assert "stage vad has not run yet" in capsys.readouterr().err


def test_bad_config_key_exits_2_naming_the_key(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("inputs: [a.wav]\nwork_dir: w\nvad:\n  agressiveness: 2\n")
    assert main(["run", str(tmp_path / "c.yaml")]) == 2
    assert "vad.agressiveness" in capsys.readouterr().err


def test_work_dir_inside_an_input_folder_is_rejected(tmp_path, small_archive, tiny_model, capsys):
    cfg_path = write_config(tmp_path, [str(small_archive)], tiny_model, work_dir=str(small_archive / "work"))
    assert main(["run", str(cfg_path), "--no-progress"]) == 2
    assert "inside the input folder" in capsys.readouterr().err


def test_sweep_removes_exactly_the_temporary_files_an_interrupted_run_leaves(tmp_path):
    from vadpack.pipeline.runner import sweep_temp_files

    keep = ["a.parquet", ".hidden", ".tmp-x", "sub/b.tmp-1", "sub/.staging", "deep/er/c.json"]
    temp = [".a.parquet.tmp-123", "sub/.b.srt.tmp-9", "deep/er/.c.parquet.staging"]
    for rel in keep + temp:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "sub" / ".t.parquet.staging").mkdir()  # a staging folder goes whole
    (tmp_path / "sub" / ".t.parquet.staging" / "part-0.parquet").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "deep", target_is_directory=True)  # not followed
    assert sweep_temp_files([tmp_path, tmp_path / "missing"]) == len(temp) + 1
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink())
    assert left == sorted(keep)
