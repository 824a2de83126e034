"""Randomly initialised Paraformer model folders, for the offline demo, the tests and the benchmarks.

The folder has the layout of a FunASR hub model (config.yaml, tokens.json, am.mvn, model.pt) and is
built from FunASR's own registered classes, so ``AutoModel(model=DIR)`` loads it like a trained
model. Its text is meaningless, but its shapes, timings, batching and timestamps are real:

- ``tiny``: a few small blocks, fast enough for CPU tests.
- ``large``: the Paraformer-large architecture (about 220 M parameters), which costs the same to
  compute as the trained model, so benchmarks use it.

The same seed writes the same weights (and the same bytes of model.pt).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from vadpack.asr.funasr_compat import registered_class

SIZES = ("tiny", "large")
VARIANTS = ("Paraformer", "BiCifParaformer", "SeacoParaformer")
FEATURE_DIM = 80 * 7  # n_mels * lfr_m

FRONTEND_CONF = {
    "fs": 16000,
    "window": "hamming",
    "n_mels": 80,
    "frame_length": 25,
    "frame_shift": 10,
    "lfr_m": 7,
    "lfr_n": 6,
    "dither": 0.0,  # FunASR's default 1.0 adds random noise, so features would not repeat
    "cmvn_file": "am.mvn",
}

_ARCH: dict[str, dict[str, Any]] = {
    "tiny": {"dim": 64, "heads": 4, "units": 128, "enc_blocks": 2, "dec_blocks": 1, "vocab": 320},
    "large": {"dim": 512, "heads": 4, "units": 2048, "enc_blocks": 50, "dec_blocks": 16, "vocab": 8404},
}

SPECIAL_HEAD = ("<blank>", "<s>", "</s>")
SPECIAL_TAIL = ("<unk>",)

# English pieces in FunASR's style: a trailing "@@" means the word continues in the next token.
_EN_WORDS = (
    "the", "and", "of", "to", "in", "is", "we", "you", "it", "that", "for", "on", "with", "this",
    "meeting", "speech", "data", "model", "time", "next", "ok", "yes", "no", "so", "well",
)
_EN_PIECES = (
    "recog@@", "ni@@", "tion", "pro@@", "cess", "ing", "trans@@", "cri@@", "pt", "lec@@", "ture",
    "sum@@", "mary", "re@@", "port", "un@@", "der@@", "stand", "a@@", "gen@@", "da", "qu@@", "es@@",
    "ti@@", "on", "s", "ed", "er", "ly", "al",
)


def write_tiny_model(out_dir: str | Path, size: str = "tiny", seed: int = 0,
                     variant: str = "Paraformer") -> Path:
    """Write a randomly initialised Paraformer model folder.

    Args:
        out_dir: folder to create (or overwrite the four model files in).
        size: ``tiny`` for tests and the demo, ``large`` for the Paraformer-large architecture.
        seed: random seed; the same seed gives the same weights.
        variant: ``Paraformer``, or ``BiCifParaformer`` / ``SeacoParaformer`` (their second CIF for
            timestamps, and SeACo's hotword biasing), to test what depends on the variant.

    Returns:
        The model folder, ready for ``AutoModel(model=str(path))`` and ``asr.model = path``.
    """
    if size not in SIZES:
        raise ValueError(f"size = {size!r} is not allowed; choose one of {', '.join(SIZES)}")
    if variant not in VARIANTS:
        raise ValueError(f"variant = {variant!r} is not allowed; choose one of {', '.join(VARIANTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokens = token_list(_ARCH[size]["vocab"])
    config = model_config(size, variant)
    model = _build_model(config, len(tokens), seed)
    if size == "tiny":
        _make_cif_fire(model.predictor, seed)
    (out / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=0), encoding="utf-8")
    (out / "am.mvn").write_text(am_mvn_text(), encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    torch.save(model.state_dict(), out / "model.pt")
    return out


def model_config(size: str, variant: str = "Paraformer") -> dict[str, Any]:
    """The config.yaml content of a model of ``size`` (see ``SIZES``) and ``variant``."""
    config = _paraformer_config(_ARCH[size])
    if variant != "Paraformer":
        config.update(_bicif_changes(_ARCH[size]))
    if variant == "SeacoParaformer":
        config.update(_seaco_changes(_ARCH[size]))
    config["model"] = variant
    return config


def _paraformer_config(arch: dict[str, Any]) -> dict[str, Any]:
    dim, heads, units = arch["dim"], arch["heads"], arch["units"]
    return {
        "model": "Paraformer",
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": dim, "attention_heads": heads, "linear_units": units,
                         "num_blocks": arch["enc_blocks"], "dropout_rate": 0.1,
                         "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                         "input_layer": "pe", "pos_enc_class": "SinusoidalPositionEncoder",
                         "normalize_before": True, "kernel_size": 11, "sanm_shfit": 0,
                         "selfattention_layer_type": "sanm"},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {"attention_heads": heads, "linear_units": units, "num_blocks": arch["dec_blocks"],
                         "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                         "self_attention_dropout_rate": 0.1, "src_attention_dropout_rate": 0.1,
                         "att_layer_num": arch["dec_blocks"], "kernel_size": 11, "sanm_shfit": 0},
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": dim, "threshold": 1.0, "l_order": 1, "r_order": 1,
                           "tail_threshold": 0.45},
        "frontend": "WavFrontend",
        "frontend_conf": dict(FRONTEND_CONF),
        "specaug": None,
        "specaug_conf": None,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True, "token_list": "tokens.json"},
        "normalize": None,
    }


def _bicif_changes(arch: dict[str, Any]) -> dict[str, Any]:
    """BiCif-Paraformer: CifPredictorV3, whose second, upsampled CIF gives the timestamps."""
    return {"predictor": "CifPredictorV3",
            "predictor_conf": {"idim": arch["dim"], "threshold": 1.0, "l_order": 1, "r_order": 1,
                               "tail_threshold": 0.45, "smooth_factor2": 0.25, "noise_threshold2": 0.01,
                               "upsample_times": 3, "use_cif1_cnn": False, "upsample_type": "cnn_blstm"}}


def _seaco_changes(arch: dict[str, Any]) -> dict[str, Any]:
    """SeACo-Paraformer: a hotword encoder and decoder on top of BiCif."""
    dim, vocab = arch["dim"], arch["vocab"]
    return {"model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                           "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75,
                           "inner_dim": dim, "bias_encoder_type": "lstm", "bias_encoder_bid": False,
                           "seaco_lsm_weight": 0.1, "seaco_length_normalized_loss": True,
                           "NO_BIAS": vocab - 27 if vocab == 8404 else vocab - 2, "seaco_weight": 0.01},
            "seaco_decoder": "ParaformerSANMDecoder",
            "seaco_decoder_conf": {"attention_heads": arch["heads"], "linear_units": arch["units"],
                                   "num_blocks": 2 if arch["dec_blocks"] < 4 else 4, "dropout_rate": 0.1,
                                   "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                                   "src_attention_dropout_rate": 0.1, "kernel_size": 21, "sanm_shfit": 0,
                                   "use_output_layer": False, "wo_input_layer": True}}


def token_list(vocab_size: int) -> list[str]:
    """A vocabulary of ``vocab_size`` tokens laid out like Paraformer's.

    ``<blank> <s> </s>`` come first (ids 0, 1, 2: blank, sos, eos), ``<unk>`` last, and between
    them CJK characters mixed with English words and ``@@`` continuation pieces.
    """
    n_body = vocab_size - len(SPECIAL_HEAD) - len(SPECIAL_TAIL)
    english = list(_EN_WORDS + _EN_PIECES)
    english += [f"{a}{b}@@" for a in "bcdfgklmnprst" for b in "aeiou"]  # more continuation pieces
    english = list(dict.fromkeys(english))
    n_en = min(len(english), max(n_body // 3, 1))
    n_cjk = n_body - n_en
    cjk = [chr(0x4E00 + i) for i in range(n_cjk)]
    tokens = list(SPECIAL_HEAD) + _interleave(cjk, english[:n_en]) + list(SPECIAL_TAIL)
    assert len(tokens) == vocab_size and len(set(tokens)) == vocab_size
    return tokens


def _interleave(major: list[str], minor: list[str]) -> list[str]:
    """``major`` with the items of ``minor`` spread evenly through it.

    Spreading keeps both scripts in any slice of ids, so a random model emits both.
    """
    out: list[str] = []
    for i, item in enumerate(major):
        out.append(item)
        lo, hi = i * len(minor) // len(major), (i + 1) * len(minor) // len(major)
        out.extend(minor[lo:hi])
    return out


def am_mvn_text(n_mels: int = 80, lfr_m: int = 7) -> str:
    """A global CMVN file in Kaldi nnet text format (AddShift = -mean, Rescale = 1/std).

    The values follow the shape of the trained Paraformer's: log-mel means falling from about 8 to
    14 with the mel bin, inverse standard deviations around 0.15.
    """
    k = np.arange(n_mels, dtype=np.float64)
    shift = -(8.3 + 5.5 * (1.0 - np.exp(-k / 12.0)))
    scale = 0.156 - 0.012 * k / n_mels
    dim = n_mels * lfr_m
    shift_s = " ".join(f"{v:.6f}" for v in np.tile(shift, lfr_m))
    scale_s = " ".join(f"{v:.6f}" for v in np.tile(scale, lfr_m))
    return (
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift_s} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {scale_s} ]\n"
        "</Nnet>\n"
    )


def _build_model(config: dict[str, Any], vocab_size: int, seed: int) -> torch.nn.Module:
    """Instantiate the registered model class with a fixed seed."""
    model_class = registered_class("model_classes", config["model"])
    skip = ("model", "model_conf", "frontend", "frontend_conf", "tokenizer", "tokenizer_conf")
    kwargs = {k: v for k, v in config.items() if k not in skip}
    kwargs.update(config["model_conf"])
    # FunASR's own initialisers draw from the global generator; fork it so callers are unaffected.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(input_size=FEATURE_DIM, vocab_size=vocab_size, **kwargs)
    return model.eval()


def _make_cif_fire(predictor: torch.nn.Module, seed: int) -> None:
    """Scale the tiny predictor so CIF fires a few tokens per second, and strongly at the edges.

    With default init the weights (alpha per 60 ms frame) sit near 0.5 and barely depend on the
    input. Larger output weights make them depend on the audio, which (a) gives a plausible token
    rate and (b) makes the padded-frame effect of stock Paraformer visible in tests: the alpha of
    the last real frame reads the first padded encoder frame.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        w = predictor.cif_output.weight
        w.copy_(torch.randn(w.shape, generator=gen) * (3.0 / math.sqrt(w.shape[1])))
        predictor.cif_output.bias.fill_(-1.2)
