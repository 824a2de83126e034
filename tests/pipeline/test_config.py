"""Config loading: unknown keys and bad values are rejected with messages that name them."""

from __future__ import annotations

import pytest
from vadpack.pipeline.config import apply_override, config_from_dict, load_config

BASE = {"inputs": ["a.wav"], "work_dir": "w"}


def test_unknown_top_level_key_is_named():
    with pytest.raises(ValueError, match="unknown config key 'inptus'"):
        config_from_dict({**BASE, "inptus": ["x"]})


def test_unknown_section_key_is_named_with_allowed_keys():
    with pytest.raises(ValueError, match=r"unknown config key packer\.budget;.*allowed keys in packer: .*budget_s"):
        config_from_dict({**BASE, "packer": {"budget": 10}})


@pytest.mark.parametrize("section,key,value,match", [
    ("vad", "aggressiveness", 7, r"vad\.aggressiveness = 7 is not allowed"),
    ("vad", "frame_ms", 25, r"vad\.frame_ms"),
    ("packer", "budget_s", -1, r"packer\.budget_s = -1 is out of range"),
    ("asr", "device", "tpu", r"asr\.device = 'tpu' is not allowed"),
    ("asr", "dtype", "int8", r"asr\.dtype"),
    ("stitch", "formats", ["srt", "docx"], r"stitch\.formats has 'docx'"),
])
def test_bad_values_name_the_key(section, key, value, match):
    with pytest.raises(ValueError, match=match):
        config_from_dict({**BASE, section: {key: value}})


def test_engine_must_be_registered():
    # Input safety: the config names registered engines only, never an import path.
    with pytest.raises(ValueError, match="engine = 'os.system' is not allowed"):
        config_from_dict({**BASE, "engine": "os.system"})


def test_overrides_parse_yaml_scalars_and_create_sections():
    data = dict(BASE)
    apply_override(data, "packer.budget_s=600")
    apply_override(data, "asr.device=cpu")
    apply_override(data, "stitch.formats=[srt, vtt]")
    cfg = config_from_dict(data)
    assert cfg.packer.budget_s == 600
    assert cfg.asr.device == "cpu"
    assert cfg.stitch.formats == ("srt", "vtt")


def test_scientific_notation_is_a_number_in_the_file_and_in_overrides(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e2 as the string '1e2'; a person writing it means a number.
    (tmp_path / "c.yaml").write_text("inputs: [a.wav]\nwork_dir: w\npacker: {budget_s: 1e2}\n"
                                     "vad: {min_speech_s: 2.5E-1}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.packer.budget_s == 100.0
    assert cfg.vad.min_speech_s == 0.25
    assert load_config(tmp_path / "c.yaml", overrides=("packer.budget_s=3e2",)).packer.budget_s == 300.0
    # Text that only resembles a number stays text.
    data = {}
    apply_override(data, "inputs=[2024e1.wav]")
    assert data["inputs"] == ["2024e1.wav"]


@pytest.mark.parametrize("key,value", [("packer.budget_s", -1), ("asr.replicas", 0), ("asr.feature_workers", 999)])
def test_out_of_range_says_auto_where_auto_is_allowed(key, value):
    section, name = key.split(".")
    with pytest.raises(ValueError, match=rf"{key} = {value} is out of range \[\d+, \d+\]; give a number in it or auto"):
        config_from_dict({**BASE, section: {name: value}})


def test_malformed_override_is_rejected():
    with pytest.raises(ValueError, match="not of the form key=value"):
        apply_override({}, "packer.budget_s")


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "c.yaml").write_text("inputs: [audio]\nwork_dir: work\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.work_path == tmp_path / "work"
    assert cfg.output_path == tmp_path / "work" / "output"
    assert cfg.resolve_input("audio") == str(tmp_path / "audio")


def test_yaml_is_loaded_safely(tmp_path):
    # A python/object tag would execute code with an unsafe loader; safe_load refuses it.
    (tmp_path / "c.yaml").write_text("inputs: !!python/object/apply:os.system ['true']\nwork_dir: w\n")
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_config(tmp_path / "c.yaml")


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
