"""One source of truth for defaults: configs/default.yaml lists every key of every config section
with exactly the value the dataclass gives it when the key is left out.

A key missing from default.yaml is undocumented; a value that differs means leaving a key out does
something else than default.yaml says (packer.budget_s was 300 in the code and auto in the file).
"""

from __future__ import annotations

import dataclasses

import yaml
from vadpack.core.configtools import as_plain
from vadpack.pipeline.config import Config, load_config

from tests.conftest import REPO

DEFAULT_YAML = REPO / "configs" / "default.yaml"
# Keys without a default (the run cannot guess them): default.yaml shows an example value instead.
REQUIRED = {"inputs", "work_dir"}
NOT_A_KEY = {"base_dir"}  # set by load_config from the file's folder, never written in YAML


def config_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Config) if f.name not in NOT_A_KEY}


def test_every_key_is_in_default_yaml_with_its_default_value():
    documented = yaml.safe_load(DEFAULT_YAML.read_text())
    for name, f in config_fields().items():
        assert name in documented, f"{name} is not documented in configs/default.yaml"
        if name in REQUIRED:
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            continue
        if f.default_factory is dataclasses.MISSING:  # a top-level value
            assert documented[name] == f.default, \
                f"{name}: default.yaml says {documented[name]!r}, the code {f.default!r}"
            continue
        defaults = as_plain(f.default_factory())  # a section: each of its keys
        section = documented[name] or {}
        for key, value in defaults.items():
            assert key in section, f"{name}.{key} is not documented in configs/default.yaml"
            assert section[key] == value, f"{name}.{key}: default.yaml says {section[key]!r}, the code {value!r}"
        assert set(section) == set(defaults), f"{name}: default.yaml has keys the code does not know"


def test_default_yaml_loads_to_the_dataclass_defaults():
    # Loading it gives what leaving every key out gives (besides the required keys).
    cfg = load_config(DEFAULT_YAML)
    for name, f in config_fields().items():
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(cfg, name) == f.default_factory(), name
        elif name not in REQUIRED:
            assert getattr(cfg, name) == f.default, name


def test_budget_left_out_is_auto():
    cfg = load_config(DEFAULT_YAML, ["packer={max_items: 64}"])
    assert cfg.packer.budget_s == "auto"
