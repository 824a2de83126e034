"""The whole run's configuration: YAML -> one frozen dataclass per stage.

Unknown keys are errors that name the key. Overrides use dotted keys (``packer.budget_s=600``) and
their values are parsed as YAML scalars, so ``asr.device=cpu`` and ``packer.budget_s=600`` both work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asr.config import AsrConfig
from core.configtools import as_plain, check_choice, from_mapping
from packer.config import PackerConfig
from speakers.config import SpeakersConfig
from stitcher.config import StitchConfig
from vad.config import VadConfig

ENGINES = ("local", "ray")
SECTIONS: dict[str, type] = {"vad": VadConfig, "packer": PackerConfig, "asr": AsrConfig,
                             "speakers": SpeakersConfig, "stitch": StitchConfig}


@dataclass(frozen=True, slots=True)
class RayConfig:
    """Options of the Ray Data engine.

    Attributes:
        address: Ray cluster address; ``None`` starts a local cluster.
        num_cpus: CPUs for a local cluster; ``None`` lets Ray decide.
        num_gpus_per_actor: GPUs each asr actor holds.
        concurrency: asr actors (one per GPU on a GPU cluster).
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus_per_actor: float = 0.0
    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class Config:
    """A whole vadpack run.

    Attributes:
        inputs: files, directories (searched recursively for audio) or glob patterns.
        work_dir: where each stage writes its table and manifest, and the PCM cache.
        output_dir: final tables and exports; defaults to ``<work_dir>/output``.
        engine: ``local`` or ``ray``.
    """

    inputs: tuple[str, ...]
    work_dir: str
    output_dir: str | None = None
    engine: str = "local"
    vad: VadConfig = field(default_factory=VadConfig)
    packer: PackerConfig = field(default_factory=PackerConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    speakers: SpeakersConfig = field(default_factory=SpeakersConfig)
    stitch: StitchConfig = field(default_factory=StitchConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    base_dir: str = "."

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("inputs is empty: list audio files, directories or glob patterns")
        if not self.work_dir:
            raise ValueError("work_dir is required: the folder where vadpack keeps its stage tables")
        check_choice("engine", self.engine, ENGINES)

    @property
    def work_path(self) -> Path:
        return self._resolve(self.work_dir)

    @property
    def output_path(self) -> Path:
        return self._resolve(self.output_dir) if self.output_dir else self.work_path / "output"

    def _resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (Path(self.base_dir) / path).resolve()

    def resolve_input(self, p: str) -> str:
        """Resolve an input entry (file, directory or glob) against the config file's folder."""
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else Path(self.base_dir) / path)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config and apply ``key=value`` overrides.

    Relative paths in the config are resolved against the folder that holds the config file.

    Raises:
        ValueError: on unknown keys, bad values or malformed overrides.
        FileNotFoundError: when the config file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping of keys to values")
    for item in overrides:
        apply_override(data, item)
    return config_from_dict(data, base_dir=str(path.resolve().parent))


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override to a raw config mapping, in place."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r} is not of the form key=value (e.g. packer.budget_s=600)")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def config_from_dict(data: dict[str, Any], base_dir: str = ".") -> Config:
    """Build a validated Config from a plain mapping (as loaded from YAML)."""
    data = dict(data)
    top = {f.name for f in dataclasses.fields(Config)} - {"base_dir"}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; allowed top-level keys: {', '.join(sorted(top))}")
    inputs = data.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise ValueError("inputs must be a list of files, directories or glob patterns")
    kwargs: dict[str, Any] = {
        "inputs": tuple(inputs),
        "work_dir": data.get("work_dir"),
        "output_dir": data.get("output_dir"),
        "engine": data.get("engine", "local"),
        "base_dir": base_dir,
    }
    for name, cls in {**SECTIONS, "ray": RayConfig}.items():
        section = data.get(name)
        if section is not None and not isinstance(section, dict):
            raise ValueError(f"{name} must be a mapping of options, got {section!r}")
        section = dict(section or {})
        for key in MODEL_PATH_KEYS.get(name, ()):
            if isinstance(section.get(key), str) and section[key]:  # "" is a backend's default model
                section[key] = resolve_model_path(section[key], base_dir)
        kwargs[name] = from_mapping(cls, section, name)
    return Config(**kwargs)


# Keys that name a model: a hub id, or a local folder resolved against the config file's folder.
MODEL_PATH_KEYS = {"asr": ("model",), "vad": ("fsmn_model",), "speakers": ("model",), "stitch": ("punc_model",)}


def resolve_model_path(value: str, base_dir: str) -> str:
    """A local model folder as an absolute path; a hub id (``paraformer-zh``, ``iic/...``) unchanged."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    local = Path(base_dir) / path
    if value.startswith(("./", "../")) or local.exists():
        return str(local.resolve())
    return value


def config_to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, saved beside the outputs."""
    plain = as_plain(cfg)
    plain.pop("base_dir", None)
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
