"""Mistakes a new user makes are caught before any stage runs: exit 2, one line naming the key or the
path and what to do, no traceback, and nothing written (no recordings table, no manifest).

Each case goes through the real CLI (``pipeline.cli.main``) with a real YAML file; only the
installed-packages check is simulated, by hiding a module from ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from vadpack.pipeline.cli import main
from vadpack.pipeline.config import load_config


@dataclass(frozen=True)
class Mistake:
    """One mistake: how to make it, and what the one-line error must say (a regex)."""

    name: str
    says: str
    overrides: tuple[str, ...] = ()
    edit: Callable[[dict, Path], None] | None = None  # changes the config mapping (and files) first
    raw_yaml: str | None = None  # the config file's whole text instead of the base config
    argv: tuple[str, ...] = ()  # extra arguments after the config
    hide_module: str | None = None  # simulated: this optional extra is not installed
    config_name: str = "config.yaml"  # the path given on the command line


def _set(key: str, value) -> Callable[[dict, Path], None]:
    def edit(cfg: dict, root: Path) -> None:
        section, _, name = key.rpartition(".")
        (cfg.setdefault(section, {}) if section else cfg)[name] = value(root) if callable(value) else value
    return edit


def _side_files_only(cfg: dict, root: Path) -> None:
    (root / "side").mkdir()
    (root / "side" / "talk.rttm").write_text("SPEAKER talk 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n")
    (root / "side" / "talk.json").write_text("{}")
    cfg["inputs"] = [str(root / "side" / "*")]


def _incomplete_model(cfg: dict, root: Path) -> None:
    model = root / "model"
    shutil.copytree(cfg["asr"]["model"], model)
    (model / "am.mvn").unlink()
    cfg["asr"]["model"] = str(model)


def _file_in_the_way(cfg: dict, root: Path) -> None:
    (root / "a_file").write_text("not a folder")


MISTAKES = [
    Mistake("unknown top-level key", r"unknown config key 'inptus'", edit=_set("inptus", ["x"])),
    Mistake("unknown section key", r"unknown config key vad\.agressiveness", overrides=("vad.agressiveness=2",)),
    Mistake("wrong type", r"asr\.device must be a string, got 5", overrides=("asr.device=5",)),
    Mistake("float for int (asr.threads)", r"asr\.threads must be a whole number, got 1\.5",
            overrides=("asr.threads=1.5",)),
    Mistake("float for int (vad.workers)", r"vad\.workers must be a whole number", overrides=("vad.workers=1.5",)),
    Mistake("float for int or auto", r"asr\.feature_workers must be a whole number or 'auto', got 1\.5",
            overrides=("asr.feature_workers=1.5",)),
    Mistake("bool for int", r"packer\.max_items must be a whole number, got True",
            overrides=("packer.max_items=true",)),
    Mistake("string for a list", r"stitch\.formats must be a list.*write \[srt\]", overrides=("stitch.formats=srt",)),
    Mistake("out of range", r"packer\.budget_s = -1 is out of range", overrides=("packer.budget_s=-1",)),
    Mistake("not a finite number", r"packer\.budget_s must be a finite number or 'auto'",
            overrides=("packer.budget_s=.nan",)),
    Mistake("not an allowed choice", r"asr\.dtype = 'int8' is not allowed", overrides=("asr.dtype=int8",)),
    Mistake("engine not registered", r"engine = 'spark' is not allowed", overrides=("engine=spark",)),
    Mistake("section is not a mapping", r"vad must be a mapping", overrides=("vad=3",)),
    Mistake("override into a value", r"vad\.workers is not a section", overrides=("vad.workers.x=1",)),
    Mistake("empty inputs", r"inputs is empty", overrides=("inputs=[]",)),
    Mistake("missing config file", r"config file not found: .*nope\.yaml", config_name="nope.yaml"),
    Mistake("config is not a mapping", r"must be a YAML mapping", raw_yaml="- a\n- b\n"),
    Mistake("YAML syntax error", r"config\.yaml: YAML error at line 5, column 9",
            raw_yaml="inputs: [audio]\nwork_dir: work\nvad:\n  workers: 1\n   pad_s: 2\n"),
    Mistake("unquoted glob in YAML", r"a glob pattern must be quoted", raw_yaml="inputs: [*.wav]\nwork_dir: work\n"),
    Mistake("override without =", r"override 'packer\.budget_s' is not of the form key=value",
            overrides=("packer.budget_s",)),
    Mistake("override value not YAML", r"override 'stitch\.formats=\[srt'.*not valid YAML",
            overrides=("stitch.formats=[srt",)),
    Mistake("missing input folder", r"input '.*recordings' does not exist", edit=_set("inputs", ["recordings"])),
    Mistake("missing input file", r"input '.*nope\.wav' does not exist",
            edit=_set("inputs", lambda root: [str(root / "nope.wav")])),
    Mistake("missing list file", r"input '.*files\.txt' does not exist", edit=_set("inputs", ["files.txt"])),
    Mistake("glob matching nothing", r"input glob '/.*/audio/\*\.mp3' matches no audio file",
            edit=_set("inputs", ["audio/*.mp3"])),
    Mistake("glob matching only side files", r"input glob .*side/\*' matches no audio file", edit=_side_files_only),
    Mistake("work_dir inside an input folder", r"work_dir .* is inside the input folder",
            edit=_set("work_dir", lambda root: str(root / "audio" / "work"))),
    Mistake("work_dir under a regular file", r"work_dir .*a_file/work cannot be created: .*a_file is a file",
            edit=lambda cfg, root: (_file_in_the_way(cfg, root), cfg.update(work_dir=str(root / "a_file" / "work")))),
    Mistake("work_dir is a file", r"work_dir .*a_file is a file, not a folder",
            edit=lambda cfg, root: (_file_in_the_way(cfg, root), cfg.update(work_dir=str(root / "a_file")))),
    Mistake("output_dir under a regular file", r"output_dir .*a_file/out cannot be created",
            edit=lambda cfg, root: (_file_in_the_way(cfg, root), cfg.update(output_dir=str(root / "a_file" / "out")))),
    Mistake("work_dir on /proc", r"work_dir /proc/vadpack-work is on proc, a virtual file system.*-o work_dir=PATH",
            overrides=("work_dir=/proc/vadpack-work",)),
    Mistake("output_dir under /sys", r"output_dir /sys/vadpack/out is on sysfs, a virtual file system",
            overrides=("output_dir=/sys/vadpack/out",)),
    Mistake("missing model folder", r"asr\.model = '.*no_model' is not a folder",
            edit=_set("asr.model", lambda root: str(root / "no_model"))),
    Mistake("model path typed as a relative path", r"asr\.model = 'runs/models/tiny': no such model folder",
            overrides=("asr.model=runs/models/tiny",)),
    Mistake("incomplete model folder", r"asr\.model: model folder .* lacks am\.mvn", edit=_incomplete_model),
    Mistake("unknown hub model name", r"asr\.model = 'paraformer-zhh' is not a folder and not a FunASR model name",
            overrides=("asr.model=paraformer-zhh",)),
    Mistake("fsmn backend without its model", r"vad\.fsmn_model", overrides=("vad.backend=fsmn",)),
    Mistake("a SenseVoice setting for a Paraformer folder", r"asr\.language = 'en' applies to SenseVoice models only.*"
            r"set asr\.language: auto", overrides=("asr.language=en",)),
    Mistake("ITN for a Paraformer hub model", r"asr\.use_itn = true applies to SenseVoice models only",
            overrides=("asr.model=paraformer-en", "asr.use_itn=true")),
    Mistake("hotwords for a plain Paraformer folder",
            r"asr\.hotwords needs a SeACo-Paraformer model.*remove asr\.hotwords",
            overrides=("asr.hotwords=[vadpack]",)),
    Mistake("an unknown SenseVoice language", r"asr\.language = 'fr' is not allowed", overrides=("asr.language=fr",)),
    Mistake("silero extra not installed", r"vad\.backend = 'silero' needs the 'silero' extra.*vadpack\[silero\]",
            overrides=("vad.backend=silero",), hide_module="silero_vad"),
    Mistake("ray extra not installed", r"engine = 'ray' needs the 'ray' extra.*vadpack\[ray\]",
            overrides=("engine=ray",), hide_module="ray"),
    Mistake("speakers extra not installed", r"speakers\.enabled = True and speakers\.backend = 'resemblyzer' "
            r"needs the 'speakers' extra \(resemblyzer is not installed\)", overrides=("speakers.enabled=true",),
            hide_module="resemblyzer"),
    Mistake("float for int (speakers)", r"speakers\.group_windows must be a whole number",
            overrides=("speakers.group_windows=1.5",)),
    Mistake("--force names no stage", r"--force xyz: not a stage", argv=("--force", "xyz")),
    Mistake("--stage before its inputs", r"stage vad has not run yet", argv=("--stage", "pack")),
]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture()
def project(tmp_path, tiny_model) -> tuple[Path, dict]:
    """A valid project: one short recording in audio/, and a config that would run."""
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(16000, dtype=np.int16), 16000)
    cfg = {"inputs": ["audio"], "work_dir": "work", "vad": {"workers": 1},
           "asr": {"model": str(tiny_model), "device": "cpu", "threads": 1, "feature_workers": 0}}
    return tmp_path, cfg


def run_mistake(m: Mistake, project, monkeypatch, capsys) -> tuple[int, str, str]:
    root, cfg = project
    cfg = {**cfg, "asr": dict(cfg["asr"])}
    if m.edit:
        m.edit(cfg, root)
    (root / "config.yaml").write_text(m.raw_yaml if m.raw_yaml is not None else yaml.safe_dump(cfg))
    if m.hide_module:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == m.hide_module
                            else real(name, *a))
    monkeypatch.chdir(root)
    argv = ["run", m.config_name, "--no-progress", *m.argv]
    for o in m.overrides:
        argv += ["-o", o]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("m", MISTAKES, ids=[m.name for m in MISTAKES])
def test_mistake_exits_2_before_any_work_with_one_line(m, project, monkeypatch, capsys):
    code, out, err = run_mistake(m, project, monkeypatch, capsys)
    root = project[0]
    errors = [line for line in err.splitlines() if line.startswith("vadpack: error:")]
    assert code == 2, err
    assert errors and len(errors) == len(err.strip().splitlines()), err  # only error lines, one per mistake
    assert any(re.search(m.says, line) for line in errors), err
    assert "Traceback" not in out + err
    # Nothing of the run's work was written: no stage ran.
    assert not list(root.rglob("recordings.parquet")) and not list(root.rglob("manifests"))


def test_at_least_twenty_mistakes_are_covered():
    assert len(MISTAKES) >= 20


@pytest.mark.skipif(_cuda_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(project, monkeypatch, capsys):
    m = Mistake("cuda without CUDA", r"asr\.device = 'cuda' but torch sees no CUDA device",
                overrides=("asr.device=cuda",))
    test_mistake_exits_2_before_any_work_with_one_line(m, project, monkeypatch, capsys)


@pytest.mark.skipif(_cuda_available(), reason="this machine has CUDA")
def test_speakers_on_cuda_without_cuda(project, monkeypatch, capsys):
    m = Mistake("speakers on cuda without CUDA", r"speakers\.device = 'cuda' but torch sees no CUDA device",
                overrides=("speakers.enabled=true", "speakers.device=cuda"))
    test_mistake_exits_2_before_any_work_with_one_line(m, project, monkeypatch, capsys)


def test_every_problem_is_reported_at_once(project, monkeypatch, capsys):
    # A missing input and a missing model: one round of fixes, not two.
    m = Mistake("two mistakes", "", overrides=("inputs=[nope]", "asr.model=/nonexistent/model"))
    code, _, err = run_mistake(m, project, monkeypatch, capsys)
    assert code == 2
    assert "input" in err and "nope" in err and "asr.model" in err and len(err.strip().splitlines()) == 2


def test_verbose_shows_the_traceback(project, monkeypatch, capsys):
    # -v after the subcommand is accepted, and it is what brings a traceback back.
    m = Mistake("verbose", "", overrides=("asr.threads=1.5",), argv=("-v",))
    code, _, err = run_mistake(m, project, monkeypatch, capsys)
    assert code == 2 and "Traceback" in err and "asr.threads must be a whole number" in err


def test_version_and_global_flags_after_the_subcommand(project, monkeypatch, capsys):
    from vadpack.core import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vadpack {__version__}"
    root, cfg = project
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(root)
    assert main(["status", "config.yaml", "-q"]) == 0
    assert main(["-q", "status", "config.yaml"]) == 0


def test_status_names_what_would_stop_the_next_run(project, monkeypatch, capsys):
    root, cfg = project
    (root / "config.yaml").write_text(yaml.safe_dump({**cfg, "inputs": ["gone"]}))
    monkeypatch.chdir(root)
    assert main(["status", "config.yaml"]) == 0
    out, err = capsys.readouterr()
    assert "scan    missing" in out
    assert f"the next run would stop: input '{root / 'gone'}' does not exist" in err  # resolved, absolute


def test_override_paths_resolve_against_the_current_directory(tmp_path, tiny_model, monkeypatch):
    # The config lives in conf/; the person types -o paths relative to where they stand.
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "c.yaml").write_text("inputs: [in_conf]\nwork_dir: work\n")
    here = tmp_path / "here"
    (here / "models").mkdir(parents=True)
    shutil.copytree(tiny_model, here / "models" / "tiny")
    monkeypatch.chdir(here)
    cfg = load_config(tmp_path / "conf" / "c.yaml", ["inputs=[mydata, /abs/x.wav]", "output_dir=out",
                                                     "asr.model=models/tiny", "stitch.punc_model=ct-punc"])
    assert cfg.inputs == (str(here / "mydata"), "/abs/x.wav")
    assert cfg.output_path == here / "out"
    assert cfg.asr.model == str(here / "models" / "tiny")
    assert cfg.stitch.punc_model == "ct-punc"  # a hub id stays a hub id
    # Paths written in the file still resolve against the file's folder.
    assert cfg.work_path == tmp_path / "conf" / "work"
    assert load_config(tmp_path / "conf" / "c.yaml").resolve_input("in_conf") == str(tmp_path / "conf" / "in_conf")


def test_tiny_model_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    target = tmp_path / "models"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    assert main(["tiny-model", str(target)]) == 2
    assert "is not empty" in capsys.readouterr().err and (target / "mine.txt").read_text() == "keep me"
    assert main(["tiny-model", str(target), "--force"]) == 0
    assert (target / "model.pt").is_file() and (target / "mine.txt").is_file()
