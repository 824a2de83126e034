"""The whole run's configuration: YAML -> one frozen dataclass per stage.

Unknown keys are errors that name the key. Overrides use dotted keys (``packer.budget_s=600``) and
their values are parsed as YAML scalars, so ``asr.device=cpu`` and ``packer.budget_s=600`` both work.
Relative paths in the file resolve against the file's folder; relative paths given as overrides
resolve against the current directory, where the person typing them is.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from vadpack.asr.config import AsrConfig
from vadpack.core.configtools import as_plain, check_choice, check_fields, check_range, from_mapping
from vadpack.core.models import is_local_model
from vadpack.packer.config import PackerConfig
from vadpack.speakers.config import SpeakersConfig
from vadpack.stitcher.config import StitchConfig
from vadpack.vad.config import VadConfig

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

    def __post_init__(self) -> None:
        check_fields(self, "ray")
        if self.num_cpus is not None:
            check_range("ray.num_cpus", self.num_cpus, 1, None)
        check_range("ray.num_gpus_per_actor", self.num_gpus_per_actor, 0, 1024)
        check_range("ray.concurrency", self.concurrency, 1, 100_000)


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
        check_fields(self, "")
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

    @property
    def not_inputs(self) -> dict[str, Path]:
        """The folders that are never input, by their key: work_dir (its PCM cache is audio)."""
        return {"work_dir": self.work_path}

    def resolve_input(self, p: str) -> str:
        """Resolve an input entry (file, directory or glob) against the config file's folder."""
        path = Path(p).expanduser()
        return str(path if path.is_absolute() else Path(self.base_dir) / path)


def load_config(path: str | Path, overrides: Iterable[str] | Mapping[str, Any] = ()) -> Config:
    """Load a YAML config and apply overrides: ``key=value`` strings (values read as YAML), or a mapping
    of dotted keys to values (taken as they are).

    Relative paths in the config are resolved against the folder that holds the config file;
    relative paths given in overrides against the current directory.

    Raises:
        ValueError: on YAML syntax errors, unknown keys, bad values or malformed overrides; the
            message is one line that names the file, key or override.
        FileNotFoundError: when the config file does not exist.
    """
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(overrides, Mapping):
        for dotted, value in overrides.items():
            key = set_dotted(data, dotted, value)
            _resolve_override_path(data, key, os.getcwd())
    else:
        for item in overrides:
            key = apply_override(data, item)
            _resolve_override_path(data, key, os.getcwd())
    return config_from_dict(data, base_dir=str(path.resolve().parent))


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e6`` and ``2.5E-3`` as numbers as YAML 1.2 does (YAML 1.1, which
    PyYAML follows, needs a dot and a sign: ``1.0e+6``; ``budget_s: 1e6`` was the string '1e6')."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = f"{path} is a folder, not a file" if path.is_dir() else f"not found: {path}"
        raise FileNotFoundError(f"config file {what}; give the path of a YAML config "
                                "(configs/default.yaml documents every key)")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: {_yaml_problem(e)}; fix the file (indentation, colons, quotes)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path} cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping of keys to values")
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line from a YAML error: what is wrong and where (PyYAML's own text spans several lines)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    # An unquoted glob (inputs: [*.wav]) is a YAML alias: say what to do, not what the parser saw.
    hint = "; a glob pattern must be quoted: ['*.wav']" if "alias" in str(getattr(e, "context", "")) else ""
    return f"YAML error{where}: {problem}{hint}"


def apply_override(data: dict[str, Any], item: str) -> str:
    """Apply one ``dotted.key=value`` override to a raw config mapping, in place.

    Returns:
        The dotted key it set.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r} is not of the form key=value (e.g. -o packer.budget_s=600)")
    return set_dotted(data, key, _override_value(item, raw), what=f"override {item!r}")


def set_dotted(data: dict[str, Any], key: str, value: Any, what: str | None = None) -> str:
    """Set ``section.key`` (or a top-level key) of a raw config mapping to ``value``, in place.

    Returns:
        The dotted key it set.
    """
    parts = key.strip().split(".")
    what = what or f"override {key!r}"
    if not all(parts):
        raise ValueError(f"{what}: {key!r} is not a dotted key such as packer.budget_s")
    node = data
    for depth, part in enumerate(parts[:-1]):
        if node.get(part) is None:  # a section left empty in the YAML (`vad:`) loads as null
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ValueError(f"{what}: {'.'.join(parts[:depth + 1])} is not a section")
    node[parts[-1]] = list(value) if isinstance(value, tuple) else value
    return ".".join(parts)


def _override_value(item: str, raw: str) -> Any:
    """The YAML value of an override; text that is not YAML but no list or mapping either (a glob
    such as ``*.wav``, which YAML reads as an alias) is the string itself."""
    if not raw.strip():
        return None
    try:
        return yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as e:
        if raw.lstrip()[:1] not in ("[", "{", "'", '"'):
            return raw.strip()
        raise ValueError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(e)}); "
                         "quote it, e.g. -o 'stitch.formats=[srt, vtt]'") from None


def _resolve_override_path(data: dict[str, Any], key: str, cwd: str) -> None:
    """Make a path given in an override absolute against ``cwd`` (the YAML file's folder is not
    where the person typing ``-o inputs=[mydata]`` is)."""
    if key in ("inputs", "work_dir", "output_dir"):
        value = data.get(key)
        if isinstance(value, str):
            data[key] = _absolute(value, cwd)
        elif isinstance(value, list):
            data[key] = [_absolute(v, cwd) if isinstance(v, str) else v for v in value]
        return
    section, _, name = key.partition(".")
    node = data.get(section)
    if name in MODEL_PATH_KEYS.get(section, ()) and isinstance(node, dict) and isinstance(node.get(name), str):
        node[name] = resolve_model_path(node[name], cwd)


def _absolute(value: str, cwd: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(cwd) / path)


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
    # Resolved once, here: config.resolved.yaml then names the same folders from anywhere, and one
    # folder spelled two ways (``../a/x``, ``x``) is one input.
    kwargs: dict[str, Any] = {
        "inputs": tuple(absolute_path(i, base_dir) if i else i for i in inputs),
        "work_dir": _absolute_or_as_is(data.get("work_dir"), base_dir),
        "output_dir": _absolute_or_as_is(data.get("output_dir"), base_dir),
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


def absolute_path(value: str, base_dir: str) -> str:
    """``value`` (a path or a glob) absolute against ``base_dir``, ``~`` expanded, ``..`` and ``.`` folded;
    symbolic links are kept as written."""
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(value)))


def _absolute_or_as_is(value: Any, base_dir: str) -> Any:
    return absolute_path(value, base_dir) if isinstance(value, str) and value else value


# Keys that name a model: a hub id, or a local folder resolved against the config file's folder.
MODEL_PATH_KEYS = {"asr": ("model",), "vad": ("fsmn_model",), "speakers": ("model",), "stitch": ("punc_model",)}


def resolve_model_path(value: str, base_dir: str) -> str:
    """A local model folder as an absolute path; a hub id (``paraformer-zh``, ``iic/...``) unchanged."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    return str((Path(base_dir) / path).resolve()) if is_local_model(value, base_dir) else value


def config_to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, saved beside the outputs."""
    plain = as_plain(cfg)
    plain.pop("base_dir", None)
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
