"""Loading a FunASR Paraformer-family model once per process, and the padding-invariance wrapper.

``asr.model`` is a local model folder (config.yaml, tokens.json, am.mvn, model.pt) or a FunASR hub
id. A local folder is checked before FunASR sees it, because FunASR loads a folder without am.mvn
silently with no CMVN (every result is then wrong) and only prints a warning for weights missing
from model.pt.
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

from asr.config import AsrConfig, is_local_model
from asr.funasr_compat import funasr_tables
from asr.types import DeviceInfo, FrontendInfo, LoadedModel
from core.configtools import ConfigError
from core.device import resolve_device as core_resolve_device

log = logging.getLogger("vadpack.asr")

MODEL_FILES = ("config.yaml", "am.mvn", "model.pt")
TOKEN_FILES = ("tokens.json", "tokens.txt")
CONFIG_KEYS = ("model", "frontend_conf", "tokenizer_conf")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_model(cfg: AsrConfig) -> LoadedModel:
    """Load the configured model (once per process) for decoding.

    Args:
        cfg: the asr config; ``model``, ``device``, ``dtype``, ``threads``, ``pad_invariant`` and
            ``hotwords`` matter here.

    Returns:
        The model with its tokenizer and frontend, wrapped for padding invariance when
        ``cfg.pad_invariant`` is set.

    Raises:
        FileNotFoundError: a local model folder lacks a file it needs.
        ValueError: the device is not available; ConfigError (a ValueError: the person must change
            the config, a rerun alone does not help) when the model cannot be fetched or loaded, is
            not a Paraformer, or hotwords are set for a model that does not support them.
    """
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    torch.set_num_threads(cfg.n_threads)
    raw, tokenizer, frontend, info, model_class = _load_cached(
        cfg.model, _folder_stamp(cfg.model), str(device), str(dtype), cfg.n_threads, cfg.compile)
    return LoadedModel(
        net=PadInvariantModel(raw) if cfg.pad_invariant else raw,
        funasr_model=raw, tokenizer=tokenizer, frontend=frontend, frontend_info=info,
        name=cfg.model, model_class=model_class, device=device, dtype=dtype,
        pad_invariant=cfg.pad_invariant,
        hotword_ids=_hotword_ids(raw, model_class, cfg, tokenizer, frontend),
    )


class PadInvariantModel:
    """A wrapper that makes a FunASR Paraformer-family model give the same result in any batch.

    Stock Paraformer is not padding invariant. Its CIF predictor (CifPredictorV2, and CifPredictorV3
    in BiCif- and SeACo-Paraformer) runs a convolution with one frame of right context over the
    encoder output, so the weight of an item's last frame reads the frame after it. Alone, that frame
    is the predictor's own zero padding; inside a batch it is the encoder output at the first padded
    position, which is not zero. Token counts and timestamps then depend on the batch. Zeroing the
    encoder frames past each item's length before the predictor makes every padded frame look like
    the zero padding the item sees alone. The decoder masks padded frames itself and gets the encoder
    output unchanged.

    Only the predictor calls are intercepted; every other attribute is the wrapped model's.
    """

    __slots__ = ("inner",)

    def __init__(self, inner: torch.nn.Module) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def calc_predictor(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor) -> tuple:
        return self.inner.calc_predictor(zero_past_lengths(encoder_out, encoder_out_lens), encoder_out_lens)

    def calc_predictor_timestamp(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor,
                                 token_num: torch.Tensor) -> tuple:
        masked = zero_past_lengths(encoder_out, encoder_out_lens)
        return self.inner.calc_predictor_timestamp(masked, encoder_out_lens, token_num)


def zero_past_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` (batch, time, dim) with the frames at or past each item's length set to 0."""
    steps = torch.arange(x.size(1), device=x.device)
    keep = steps[None, :] < lengths.to(x.device)[:, None]
    return x * keep[:, :, None].to(x.dtype)


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
    """Check that a local model folder has everything decoding needs, before FunASR loads it.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: config.yaml is not a mapping with the keys FunASR needs.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"asr.model = {str(folder)!r} is not a folder; give a FunASR hub id or a "
                                "model folder (write a test one with `vadpack tiny-model DIR`)")
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in TOKEN_FILES):
        missing.append(" or ".join(TOKEN_FILES))
    if missing:
        why = " (without it FunASR would skip CMVN and decode garbage)" if "am.mvn" in missing else ""
        raise FileNotFoundError(f"model folder {path} lacks {', '.join(missing)}{why}; a model folder holds "
                                "config.yaml, tokens.json, am.mvn and model.pt")
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    if not isinstance(config, dict) or any(k not in config for k in CONFIG_KEYS):
        raise ValueError(f"{path / 'config.yaml'} must be a mapping with the keys {', '.join(CONFIG_KEYS)}")
    return path


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
    from funasr import AutoModel

    local = is_local_model(spec)
    name = str(Path(spec).expanduser().resolve()) if local else spec
    # AutoModel.build_model is the loader without AutoModel's side effects (root logging setup,
    # version check). dither 0 overrides the frontend's default random dither: results must repeat.
    try:
        with _quiet_root_logger():
            model, kwargs = AutoModel.build_model(model=name, device=device, ncpu=threads,
                                                  disable_update=True, disable_log=True,
                                                  frontend_conf={"dither": 0.0})
    except Exception as e:  # FunASR raises anything from a failed download to a KeyError
        raise ConfigError(_load_error(spec, local, e)) from e
    _check_loaded(spec, model, kwargs)
    precision = getattr(torch, dtype.removeprefix("torch."))
    model.to(dtype=precision)
    if precision != torch.float32:
        keep_float32_predictor(model)
        cast_decoder_masks(model)
    model.eval()
    if compile_encoder:
        compile_module(model, "encoder")
    info = _frontend_info(kwargs)
    return model, kwargs["tokenizer"], kwargs["frontend"], info, type(model).__name__


def compile_module(model: torch.nn.Module, name: str) -> None:
    """Replace ``model.<name>`` by its ``torch.compile`` form, with the compiled graph cached on disk.

    Dynamic shapes, because every batch has another length and item count: one graph serves them all.
    Inductor's FX-graph cache lives in TORCHINDUCTOR_CACHE_DIR, by default here in
    ~/.cache/vadpack/torchinductor (not /tmp, which a reboot empties), so a later run skips the
    minutes of compiling. float32 results are identical to eager (tests/asr/test_compile.py).
    """
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "vadpack" / "torchinductor"))
    setattr(model, name, torch.compile(getattr(model, name), dynamic=True))


def keep_float32_predictor(model: torch.nn.Module) -> None:
    """Run the CIF predictor of a half-precision model in float32 (decoding casts its input).

    FunASR's CIF predictors multiply their weights by a float32 mask, then write float32 frames into
    a tensor of the hidden states' dtype, which fails for bfloat16 and float16 ("Index put requires
    the source and destination dtypes match"). In float32 the integration works, and the token
    count and timestamps are those of float32 on the same encoder output. The predictor is a few
    layers against the encoder's 50, so this costs little.
    """
    model.predictor.float()


def cast_decoder_masks(model: torch.nn.Module) -> None:
    """Give the decoder layers of a half-precision model their masks in the model's dtype.

    FunASR's Paraformer decoders build float32 masks and multiply them into the hidden states
    before a convolution (the FSMN memory), which then meets float32 input with half-precision
    weights and fails. The masks hold only 0 and 1, exact in any dtype. A forward pre-hook on each
    decoder layer of this model (not a patch of FunASR) casts them; the layers pass them on.
    """
    for module in model.modules():
        if type(module).__name__ == "DecoderLayerSANM":
            module.register_forward_pre_hook(_masks_like_input)


def _masks_like_input(module: torch.nn.Module, args: tuple) -> tuple:
    """(tgt, tgt_mask, memory, memory_mask, ...) with both masks in the dtype of tgt."""
    dtype = args[0].dtype
    return tuple(a.to(dtype) if i in (1, 3) and isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for i, a in enumerate(args))


def _load_error(spec: str, local: bool, e: Exception) -> str:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    if local:
        return f"asr.model = {spec!r}: FunASR could not load this model folder: {first}"
    return (f"asr.model = {spec!r}: FunASR could not fetch or load this hub model ({first}). Without "
            "internet, set asr.model to a local model folder (config.yaml, tokens.json, am.mvn, model.pt), "
            "for example one written by `vadpack tiny-model DIR`")


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


def _check_loaded(spec: str, model: torch.nn.Module, kwargs: dict[str, Any]) -> None:
    """Refuse a model vadpack cannot decode correctly, naming what is wrong."""
    for method in ("encode", "calc_predictor", "cal_decoder_with_predictor"):
        if not hasattr(model, method):
            raise ConfigError(f"asr.model = {spec!r} is a {type(model).__name__}, not a Paraformer; vadpack "
                             "decodes Paraformer, BiCifParaformer and SeacoParaformer models")
    frontend = kwargs.get("frontend")
    if frontend is None or getattr(frontend, "cmvn", None) is None:
        raise ConfigError(f"asr.model = {spec!r}: the frontend has no CMVN (am.mvn); features would be wrong")
    if kwargs.get("tokenizer") is None:
        raise ConfigError(f"asr.model = {spec!r}: config.yaml names no tokenizer")
    _check_weights(spec, model, kwargs.get("init_param"))


def _check_weights(spec: str, model: torch.nn.Module, init_param: str | None) -> None:
    """Check model.pt covers every parameter: FunASR only prints a warning for missing ones."""
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


def _frontend_info(kwargs: dict[str, Any]) -> FrontendInfo:
    frontend = kwargs["frontend"]
    return FrontendInfo(
        name=type(frontend).__name__, fs=int(frontend.fs), window=str(frontend.window),
        n_mels=int(frontend.n_mels),
        frame_length_ms=int(frontend.frame_length), frame_shift_ms=int(frontend.frame_shift),
        lfr_m=int(frontend.lfr_m), lfr_n=int(frontend.lfr_n), cmvn_file=str(frontend.cmvn_file),
        dither=float(frontend.dither),
    )


def _hotword_ids(model: torch.nn.Module, model_class: str, cfg: AsrConfig, tokenizer: Any,
                 frontend: Any) -> tuple[tuple[int, ...], ...] | None:
    """Token ids of ``cfg.hotwords``, tokenised the way SeACo-Paraformer's own inference does."""
    if not cfg.hotwords:
        return None
    if not hasattr(model, "generate_hotwords_list"):
        raise ConfigError(f"asr.hotwords needs a SeACo-Paraformer model, but {cfg.model!r} is a "
                         f"{model_class}; remove asr.hotwords or use a SeACo-Paraformer model")
    ids = model.generate_hotwords_list(" ".join(cfg.hotwords), tokenizer=tokenizer, frontend=frontend)
    return tuple(tuple(int(i) for i in word) for word in ids)
