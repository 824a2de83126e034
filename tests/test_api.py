"""The public Python API: ``import vadpack``, run the demo archive, read the tables back."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

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
    # A second run finds everything up to date, and its summary shows no earlier run's batches.
    again = vadpack.run(cfg_path)
    assert again.stages_run == () and again.summary.batches == 0 and again.summary.padding_efficiency is None
    states = vadpack.status(cfg_path)
    assert [s.state for s in states] == ["done"] * 6 and all(isinstance(s, vadpack.StageState) for s in states)
    # Counts agree: status counts the segments asr holds, and says they were decoded, not reused.
    asr = states[vadpack.STAGES.index("asr")]
    assert asr.rows == report.summary.segments and asr.reason == f"{report.summary.segments} decoded, 0 reused " \
        "from the store"
    # force="asr" is the stage asr (not the letters a, s, r): every segment is decoded again.
    forced = vadpack.run(cfg_path, force="asr")
    assert forced.stages_run == ("pack", "asr", "stitch")
    assert forced.summary.decoded_segments == forced.summary.segments == report.summary.segments
    assert vadpack.read_tables(vadpack.load_config(cfg_path).output_path).segments.equals(tables.segments)


def test_read_tables_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="documents.parquet"):
        vadpack.read_tables(tmp_path)


# ---- misuse: every wrong argument is refused before any work, naming the argument -------------------

MISUSES = [
    ("force as a misspelt stage", {"force": "asrr"}, ValueError, r"force='asrr' is not a stage; choose one of scan"),
    ("force listing a misspelt stage", {"force": ["asrr"]}, ValueError, r"force='asrr' is not a stage"),
    ("force of another type", {"force": 3}, TypeError, r"force must be a stage, a list of stages or True"),
    ("force as a mapping", {"force": {"asr": True}}, TypeError, r"force must be a stage"),
    ("stage misspelt", {"stage": "asrr"}, ValueError, r"stage='asrr' is not a stage; choose one of"),
    ("stage in capitals", {"stage": "ASR"}, ValueError, r"stage='ASR' is not a stage \(did you mean 'asr'\?\)"),
    ("stage with from_stage", {"stage": "asr", "from_stage": "vad"}, ValueError,
     r"stage='asr' and from_stage='vad' were both given"),
    ("from_stage misspelt", {"from_stage": "stich"}, ValueError, r"from_stage='stich' is not a stage"),
    ("overrides as one string", {"overrides": "packer.budget_s=60"}, TypeError,
     r"overrides must be a list of 'key=value' strings or a dict; got the string 'packer.budget_s=60'"),
    ("overrides with a non-string", {"overrides": [("packer.budget_s", 60)]}, TypeError, r"overrides: .* is not a"),
]


@pytest.mark.parametrize(("name", "kwargs", "error", "says"), MISUSES, ids=[m[0] for m in MISUSES])
def test_run_refuses_misuse_naming_the_argument(tmp_path, tiny_model, name, kwargs, error, says) -> None:
    cfg_path = write_config(tmp_path, [str(REPO / "examples")], tiny_model)
    with pytest.raises(error, match=says):
        vadpack.run(cfg_path, **kwargs)
    assert not (tmp_path / "work").exists()  # refused before any work


def test_load_config_and_status_refuse_a_string_of_overrides(tmp_path, tiny_model) -> None:
    cfg_path = write_config(tmp_path, [str(REPO / "examples")], tiny_model)
    with pytest.raises(TypeError, match=r"overrides must be a list.*\['packer.budget_s=60'\]"):
        vadpack.load_config(cfg_path, "packer.budget_s=60")
    with pytest.raises(TypeError, match=r"overrides must be a list"):
        vadpack.status(cfg_path, overrides="packer.budget_s=60")
    with pytest.raises(TypeError, match=r"config must be a path"):
        vadpack.status(3)  # type: ignore[arg-type]


def test_overrides_as_a_list_or_a_dict(tmp_path, tiny_model) -> None:
    cfg_path = write_config(tmp_path, [str(REPO / "examples")], tiny_model)
    as_list = vadpack.load_config(cfg_path, ["packer.budget_s=45", "stitch.formats=[srt, vtt]"])
    as_dict = vadpack.load_config(cfg_path, {"packer.budget_s": 45, "stitch.formats": ["srt", "vtt"]})
    assert as_list == as_dict and as_dict.packer.budget_s == 45
    with pytest.raises(ValueError, match=r"unknown config key packer\.budget"):
        vadpack.load_config(cfg_path, {"packer.budget": 45})


def test_make_config_checks_as_yaml_does(tmp_path, tiny_model, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audio").mkdir()
    built = vadpack.make_config(inputs="audio", work_dir="work", asr={"model": str(tiny_model), "device": "cpu"},
                                packer={"budget_s": 60})
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(f"inputs: [audio]\nwork_dir: work\nasr: {{model: {tiny_model}, device: cpu}}\n"
                         "packer: {budget_s: 60}\n")
    assert built == vadpack.load_config(yaml_path)
    assert built.work_dir == str(tmp_path / "work") and built.inputs == (str(tmp_path / "audio"),)
    with pytest.raises(ValueError, match=r"unknown config key asr\.modle"):
        vadpack.make_config(inputs="audio", work_dir="work", asr={"modle": "x"})
    with pytest.raises(ValueError, match=r"packer\.budget_s = -1 is out of range"):
        vadpack.make_config(inputs="audio", work_dir="work", packer={"budget_s": -1})
    with pytest.raises(TypeError, match=r"asr must be a mapping"):
        vadpack.make_config(inputs="audio", work_dir="work", asr="paraformer-zh")  # type: ignore[arg-type]


def test_public_names_are_exported() -> None:
    assert vadpack.STAGES == ("scan", "vad", "speakers", "pack", "asr", "stitch")
    for name in vadpack.__all__:
        assert getattr(vadpack, name) is not None, name
    assert issubclass(vadpack.PreflightError, vadpack.ConfigError) and issubclass(vadpack.ConfigError, ValueError)
    fields = {f for f in vadpack.RunSummary.__dataclass_fields__}
    doc = vadpack.RunSummary.__doc__ or ""
    assert all(f"{f}:" in doc for f in fields), "every summary field is documented"


def test_import_vadpack_is_light() -> None:
    # A worker process imports vadpack.asr.features (and so vadpack): not the pipeline, not pyarrow.
    code = ("import sys, vadpack, vadpack.core.processes; "
            "print(sorted(m for m in sys.modules if m.startswith(('vadpack.pipeline', 'pyarrow'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_resolved_config_names_absolute_paths_and_status_reads_it_from_anywhere(tmp_path, tiny_model) -> None:
    # A run started from another folder, with relative paths in the config (resolved against its folder).
    project = tmp_path / "project"
    (project / "audio").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "jfk.flac", project / "audio" / "jfk.flac")
    (project / "conf").mkdir()
    (project / "conf" / "c.yaml").write_text(
        "inputs: [../conf/../audio]\nwork_dir: ../work\nvad: {workers: 1}\n"
        f"asr: {{model: {tiny_model}, device: cpu, feature_workers: 0}}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    vadpack_cli = [sys.executable, "-m", "vadpack"]
    done = subprocess.run([*vadpack_cli, "run", "../project/conf/c.yaml", "--no-progress"], cwd=elsewhere,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load((project / "work" / "config.resolved.yaml").read_text())
    assert resolved["work_dir"] == str(project / "work") and resolved["inputs"] == [str(project / "audio")]
    status = subprocess.run([*vadpack_cli, "status", str(project / "work" / "config.resolved.yaml")], cwd=tmp_path,
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert [line.split()[1] for line in status.stdout.splitlines()[:6]] == ["done"] * 6, status.stdout


def test_status_into_a_closed_pipe_exits_quietly(tmp_path, tiny_model) -> None:
    cfg_path = write_config(tmp_path, [str(REPO / "examples")], tiny_model)
    proc = subprocess.Popen([sys.executable, "-m", "vadpack", "status", str(cfg_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # as `| head -0` does: the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""


# ---- logging: vadpack's own handler and format, whatever FunASR does to the root logger ----------------

VADPACK_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING) \S")


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_api_logs_in_its_own_format_from_the_first_line(tmp_path, tiny_model) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "audio", ignore=shutil.ignore_patterns("*.wav", "*.mp3", "*.md"))
    cfg_path = write_config(tmp_path, [str(tmp_path / "audio")], tiny_model)
    # FunASR configures the root logger when imported (the asr stage imports it mid-run).
    done = _python(f"import sys, vadpack; r = vadpack.run({str(cfg_path)!r}); print('funasr' in sys.modules)", tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and lines[0].endswith("scan: running"), done.stderr
    assert all(VADPACK_LINE.match(line) for line in lines), done.stderr
    assert done.stdout.strip() == "True" and any("stitch: done in" in line for line in lines)  # after FunASR's import
    # Routed by the user: no handler of vadpack's own, the records reach the root logger's handler.
    routed = _python("import logging, vadpack; logging.basicConfig(format='ROOT %(name)s %(message)s', "
                     f"level=logging.INFO); vadpack.run({str(cfg_path)!r}, log_to_stderr=False)", tmp_path)
    assert routed.returncode == 0, routed.stderr
    assert "ROOT vadpack scan: up to date, skipped" in routed.stderr.splitlines()
    assert not any(VADPACK_LINE.match(line) for line in routed.stderr.splitlines()), routed.stderr
    # A handler of the user's on the vadpack logger: vadpack adds none of its own (no line twice).
    own = _python("import logging, sys, vadpack; h = logging.StreamHandler(sys.stderr); "
                  "h.setFormatter(logging.Formatter('MINE %(message)s')); logging.getLogger('vadpack').addHandler(h); "
                  f"logging.getLogger('vadpack').setLevel(logging.INFO); vadpack.run({str(cfg_path)!r})", tmp_path)
    assert own.returncode == 0, own.stderr
    assert own.stderr.splitlines().count("MINE scan: up to date, skipped") == 1, own.stderr
