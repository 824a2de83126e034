"""Loading a FunASR model once per process, with the family that decodes it (``asr.family``).

``asr.model`` is a local model folder or a FunASR hub id. A local folder is checked before FunASR
sees it, with the files its family needs (Paraformer: config.yaml, tokens.json, am.mvn, model.pt;
SenseVoice: config.yaml, configuration.json, am.mvn, model.pt and its SentencePiece model), because
FunASR loads a folder without am.mvn silently with no CMVN (every result is then wrong) and only
prints a warning for weights missing from model.pt. The family is chosen from the class FunASR
builds, never from the name the user gave.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from vadpack.asr import attention, invariant, packed
from vadpack.asr.config import AsrConfig
from vadpack.asr.family import ModelFamily, family_class
from vadpack.asr.funasr_compat import funasr_tables
from vadpack.asr.types import DeviceInfo, FrontendInfo, LoadedModel
from vadpack.core.configtools import ConfigError
from vadpack.core.device import resolve_device as core_resolve_device
from vadpack.core.funasr import funasr_attr
from vadpack.core.models import is_local_model
from vadpack.core.reproducible import RowProbe
from vadpack.core.usercache import user_cache_dir

log = logging.getLogger("vadpack.asr")

MODEL_FILES = ("config.yaml", "am.mvn", "model.pt")  # every family's; each adds its own (tokens, bpe)
CONFIG_KEYS = ("model", "frontend_conf", "tokenizer_conf")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_model(cfg: AsrConfig) -> LoadedModel:
    """Load the configured model (once per process) for decoding.

    Args:
        cfg: the asr config; ``model``, ``device``, ``dtype``, ``threads`` and the family's settings
            (Paraformer: ``pad_invariant``, ``hotwords``; SenseVoice: ``language``, ``use_itn``) matter here.

    Returns:
        The model with its tokenizer, frontend and family; ``net`` is what the family decodes with
        (Paraformer: the padding-invariance wrapper when ``cfg.pad_invariant`` is set).

    Raises:
        FileNotFoundError: a local model folder lacks a file it needs.
        ValueError: the device is not available; ConfigError (a ValueError: the person must change
            the config, a rerun alone does not help) when the model cannot be fetched or loaded, no
            family decodes its class, or a setting does not apply to its family (hotwords without
            SeACo, a language for Paraformer).
    """
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    torch.set_num_threads(cfg.n_threads)
    raw, tokenizer, frontend, info, model_class = _load_cached(
        cfg.model, _folder_stamp(cfg.model), str(device), str(dtype), cfg.n_threads, cfg.compile)
    family: ModelFamily = family_class(model_class).from_model(raw, tokenizer, frontend, cfg)
    return LoadedModel(
        net=family.wrap(raw), funasr_model=raw, tokenizer=tokenizer, frontend=frontend, frontend_info=info,
        name=cfg.model, model_class=model_class, device=device, dtype=dtype,
        pad_invariant=cfg.pad_invariant, family=family, rows=_row_probe(raw),
    )


def bit_exact_batches(lm: LoadedModel) -> bool:
    """Whether ``lm`` gives each segment bit-identical results in any batch.

    On the CPU in float32 every product a segment takes part in has a shape that depends on it alone
    or a row count measured row-independent on this machine (``asr.invariant``), or, where the probe
    found no such row count, each segment is decoded on its own (``asr.infer``). Elsewhere (CUDA, half
    precision, a compiled encoder) results agree up to rounding, which can flip a near tie.
    """
    return lm.rows is not None and invariant.installed(lm.funasr_model) and lm.pad_invariant


def row_summary(lm: LoadedModel) -> str:
    """What the probe saw on this machine, for the log and the run summary ('' off the CPU's float32 path)."""
    return lm.rows.describe() if lm.rows is not None else ""


def _row_probe(model: torch.nn.Module) -> RowProbe | None:
    """The probe of the model's own product shapes, where ``_load_cached`` made it per item (CPU, float32)."""
    if not invariant.installed(model):
        return None
    rows = invariant.probe(model)
    _log_probe(rows.describe())
    return rows


@functools.lru_cache(maxsize=4)
def _log_probe(line: str) -> None:
    log.info("asr: %s", line)


def resolve_device(spec: str) -> torch.device:
    """The torch device for ``asr.device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``).

    Raises:
        ValueError: CUDA is asked for but not available, or the index is out of range.
    """
    return core_resolve_device(spec, "asr.device")


def device_info(spec: str) -> DeviceInfo:
    """The device ``asr.device`` names, described without loading a model.

    Raises:
        ValueError: CUDA is asked for but not available.
    """
    device = resolve_device(spec)
    if device.type != "cuda":
        return DeviceInfo("cpu", "cpu")
    props = torch.cuda.get_device_properties(device)
    return DeviceInfo("cuda", str(props.name), int(props.total_memory))


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The model precision, ``asr.dtype``, on any device.

    Raises:
        ValueError: bfloat16 is asked for on a CUDA device that does not support it.
    """
    if device.type != "cuda":
        if name != "float32":
            # Measured on a 2-core Xeon with AMX (random Paraformer-large, one 5 s segment, 1 thread):
            # bfloat16 0.20 s, float16 0.51 s, float32 0.54 s. Without such units it can be far slower.
            log.warning("asr.dtype = %s on the CPU: half precision is slow on CPUs without bfloat16/float16 "
                        "matrix units (Intel AMX, AVX-512 BF16/FP16), and its results differ from float32's "
                        "and between batchings; use it on the CPU to check results", name)
        return _DTYPES[name]
    if name == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"asr.dtype = bfloat16 is not supported by {torch.cuda.get_device_name(device)}; "
                         "use float16 or float32")
    return _DTYPES[name]


def check_model_folder(folder: str | Path) -> Path:
    """Check that a local model folder has everything its family needs, before FunASR loads it.

    The family comes from config.yaml's ``model`` (FunASR's class name).

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: config.yaml is not a mapping with the keys FunASR needs, or names a model class
            no family decodes.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"asr.model = {str(folder)!r} is not a folder; give a FunASR hub id or a "
                                "model folder (write a test one with `vadpack tiny-model DIR`)")
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    config = _read_model_config(path) if (path / "config.yaml").is_file() else None
    family = _folder_family(path, config) if config is not None else None
    if family is not None:
        missing += family.missing_files(path, config)
    if missing:
        why = " (without it FunASR would skip CMVN and decode garbage)" if "am.mvn" in missing else ""
        holds = family.folder_files if family is not None else "config.yaml, am.mvn and model.pt, and its tokenizer"
        raise FileNotFoundError(f"model folder {path} lacks {', '.join(missing)}{why}; a model folder "
                                f"holds {holds}")
    return path


def model_class_of_folder(folder: str | Path) -> str:
    """The FunASR class a checked model folder's config.yaml names (``check_model_folder`` first)."""
    path = Path(folder).expanduser()
    return str(_read_model_config(path)["model"])


def _folder_family(path: Path, config: dict[str, Any]) -> type[ModelFamily]:
    try:
        return family_class(str(config["model"]))
    except ValueError as e:
        raise ValueError(f"model folder {path}: config.yaml names model {config['model']!r}, and {e}") from None


def _read_model_config(path: Path) -> dict[str, Any]:
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    if not isinstance(config, dict) or any(k not in config for k in CONFIG_KEYS):
        raise ValueError(f"{path / 'config.yaml'} must be a mapping with the keys {', '.join(CONFIG_KEYS)}")
    return config


def _folder_stamp(spec: str) -> tuple[int, int]:
    """Size and mtime of a local model.pt, so the process cache notices a rewritten folder."""
    if not is_local_model(spec):
        return (0, 0)
    weights = check_model_folder(spec) / "model.pt"
    st = weights.stat()
    return (st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _load_cached(spec: str, stamp: tuple[int, int], device: str, dtype: str, threads: int,
                 compile_encoder: bool = False) -> tuple:
    """Build the FunASR model once per (model, device, dtype, threads, compile); a new key frees the old one."""
    funasr_tables()  # fail early, with a clear message, if FunASR's model classes did not register
    AutoModel = funasr_attr("", "AutoModel")
    download_model = funasr_attr("download.download_model_from_hub", "download_model")

    local = is_local_model(spec)
    name = str(Path(spec).expanduser().resolve()) if local else spec
    # AutoModel.build_model is the loader without AutoModel's side effects (root logging setup,
    # version check). dither 0 overrides the frontend's default random dither: results must repeat.
    # The weights are left out of it and loaded once below: FunASR's loader reads model.pt, then
    # deep-copies the whole state (4.5 of its 8.6 s for Paraformer-large here, and a third copy of
    # the weights in memory), and only warns about weights that are missing or of the wrong shape.
    try:
        with _quiet_root_logger():
            conf = download_model(model=name, device=device, ncpu=threads, disable_update=True,
                                  disable_log=True, frontend_conf={"dither": 0.0})
            weights = conf.pop("init_param", None)
            conf.setdefault("model_conf", {})  # resolved: build_model must not resolve it again
            with no_random_init():  # model.pt replaces every weight below (_load_weights)
                model, kwargs = AutoModel.build_model(**conf)
    except Exception as e:  # FunASR raises anything from a failed download to a KeyError
        raise ConfigError(_load_error(spec, local, e)) from e
    kwargs["init_param"] = weights
    family = _check_loaded(spec, model, kwargs)
    precision = getattr(torch, dtype.removeprefix("torch."))
    model.to(dtype=precision)
    family.prepare(model, precision)  # once per loaded model: a half-precision model's own fixes
    model.eval()
    if compile_encoder:
        compile_module(model, "encoder")
    elif device == "cpu":
        attention.install(model)  # per-item attention: bit-identical in any batch, and less work
        packed.install(model)  # SAN-M encoders on the real frames only: the same bits, less work
        if precision == torch.float32:  # the promise: rounded row counts, per-item convolutions
            invariant.install(model, invariant.probe(model))
    info = _frontend_info(kwargs)
    return model, kwargs["tokenizer"], kwargs["frontend"], info, type(model).__name__


# torch.nn.init's random draws: what building a module spends its time on when its weights are then loaded.
RANDOM_INITS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def no_random_init() -> Iterator[None]:
    """Build modules without drawing their random initial weights; only for a model whose weights are loaded next.

    Drawing Paraformer-large's 220 M random initial weights took 0.8 of its 1.5 s build, every one of them then
    overwritten by model.pt (``_load_weights`` refuses a file that lacks any weight, so none is left as built).
    Inside, torch.nn.init's random functions return their tensor as it is (uninitialised memory); constants
    (zeros, ones) and buffers a module computes are made as usual. The functions are restored on exit.
    """
    import torch.nn.init as init

    saved = {name: getattr(init, name) for name in RANDOM_INITS if hasattr(init, name)}

    def leave(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    for name in saved:
        setattr(init, name, leave)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


def compile_module(model: torch.nn.Module, name: str) -> None:
    """Replace ``model.<name>`` by its ``torch.compile`` form, with the compiled graph cached on disk.

    Dynamic shapes, because every batch has another length and item count: one graph serves them all.
    Inductor's FX-graph cache lives in TORCHINDUCTOR_CACHE_DIR, by default here in
    ~/.cache/vadpack/torchinductor (``core.usercache``; not /tmp, which a reboot empties), so a later run skips the
    minutes of compiling. float32 results are identical to eager (tests/asr/test_replicas.py). A compiled
    model keeps FunASR's batched attention: the per-item loop of ``asr.attention`` has data-dependent
    lengths, which dynamo would recompile for.
    """
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(user_cache_dir() / "torchinductor"))
    setattr(model, name, torch.compile(getattr(model, name), dynamic=True))


def _load_error(spec: str, local: bool, e: Exception) -> str:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    if local:
        return f"asr.model = {spec!r}: FunASR could not load this model folder: {first}"
    return (f"asr.model = {spec!r}: FunASR could not fetch or load this hub model ({first}). Without "
            "internet, set asr.model to a local model folder (config.yaml, tokens.json, am.mvn, model.pt), "
            "for example one written by `vadpack tiny-model DIR` (`--family sensevoice` for SenseVoice)")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """FunASR logs each loading step on the root logger at INFO and WARNING; keep only errors."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _check_loaded(spec: str, model: torch.nn.Module, kwargs: dict[str, Any]) -> type[ModelFamily]:
    """The family of a loaded model, after refusing what vadpack cannot decode correctly."""
    try:
        family = family_class(type(model).__name__)
    except ValueError as e:
        raise ConfigError(f"asr.model = {spec!r}: {e}") from None
    family.check_loaded(spec, model, kwargs)
    frontend = kwargs.get("frontend")
    if frontend is None or getattr(frontend, "cmvn", None) is None:
        raise ConfigError(f"asr.model = {spec!r}: the frontend has no CMVN (am.mvn); features would be wrong")
    _load_weights(spec, model, kwargs.get("init_param"))
    return family


def _load_weights(spec: str, model: torch.nn.Module, init_param: str | None) -> None:
    """Load model.pt into ``model`` (memory-mapped, read once), refusing one that does not cover
    every weight with the right shape (FunASR's own loader only prints a warning for those)."""
    if not init_param or not Path(init_param).is_file():
        raise FileNotFoundError(f"asr.model = {spec!r}: no model.pt to load weights from")
    state = torch.load(init_param, map_location="cpu", mmap=True, weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):  # the wrappers FunASR's loader unpacks
        if isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        bad = missing + wrong
        raise ConfigError(f"{init_param} does not match its config.yaml: {len(missing)} weights missing and "
                         f"{len(wrong)} of the wrong shape (first: {bad[0]})")
    model.load_state_dict({k: state[k] for k in expected}, strict=True)


def _frontend_info(kwargs: dict[str, Any]) -> FrontendInfo:
    frontend = kwargs["frontend"]
    return FrontendInfo(
        name=type(frontend).__name__, fs=int(frontend.fs), window=str(frontend.window),
        n_mels=int(frontend.n_mels),
        frame_length_ms=int(frontend.frame_length), frame_shift_ms=int(frontend.frame_shift),
        lfr_m=int(frontend.lfr_m), lfr_n=int(frontend.lfr_n), cmvn_file=str(frontend.cmvn_file),
        dither=float(frontend.dither),
    )
