"""Randomly initialised SenseVoice-Small model folders, for the offline demo, the tests and the benchmarks.

The folder has the layout of FunASR's hub model ``iic/SenseVoiceSmall`` (configuration.json,
config.yaml, am.mvn, model.pt, chn_jpn_yue_eng_ko_spectok.bpe.model, tokens.json), built from
FunASR's registered classes, so ``AutoModel(model=DIR)`` loads it like the trained model.

- ``tiny``: a few narrow blocks and a ~1000-piece vocabulary, fast enough for CPU tests.
- ``large``: the SenseVoice-Small architecture (50 + 20 SANM blocks of 512, 25055 pieces, about
  234 M parameters), which costs what the trained model costs, so benchmarks use it.

The tokenizer is a SentencePiece BPE model trained here, offline, on a small bundled text in zh,
en, yue, ja and ko (``testkit/data/sensevoice_tiny_corpus.txt``), with SenseVoice's tags as user-defined
pieces and SenseVoice's layout: ``<unk>`` = 0 (also the CTC blank), ``<s>`` = 1, ``</s>`` = 2, no
dummy ``▁`` before the first word. ``large`` pads the vocabulary to 25055 with single CJK and Hangul
characters.

A random CTC model would emit a token in every frame and never a tag. So that its output is shaped
like the trained model's, two things are set after the random initialisation: the query embeddings
of one role share a common part and the FSMN memory taps are damped (``_shape_queries``), and the
CTC output layer is adjusted (``_shape_ctc_head``): on speech-like calibration features, a linear
discriminant per query frame (class-balanced logistic regression) lifts the tags of that frame's
kind there and suppresses them everywhere else, a discriminant per language makes the language
frame answer a language it is asked for (``asr.language: en`` gives ``en``, as the trained model
does), and the blank's bias is set so that blank wins about 60 % of the speech frames. Which tag
of a kind wins with ``auto``, and every token, still depends on the audio. The tests check on real
speech that the query frames answer with tags, as the trained model's do, so FunASR's own decoding
of this model has the trained model's form.

The same seed writes the same bytes (the calibration runs in float64, so that rounding to the
float32 weights does not depend on the platform's summation order).
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from vadpack.asr.sensevoice import (
    ALL_TAGS,
    BPE_MODEL,
    EMOTION_TAGS,
    EVENT_TAGS,
    ITN_TAGS,
    LANGUAGE_TAGS,
    N_QUERIES,
    tag,
)
from vadpack.testkit.tiny import FRONTEND_CONF, _build_model, am_mvn_text

SIZES = ("tiny", "large")
CORPUS = Path(__file__).parent / "data" / "sensevoice_tiny_corpus.txt"
TRAINED_VOCAB = 1000  # what BPE learns from the bundled text; large pads the rest
BLANK_SHARE = 0.6  # of speech frames, as a trained CTC model is silent between tokens
TAG_BOOST = 12.0  # logits added to a kind's tags in its query frame, and taken away elsewhere
ECHO_GUARD = 4 * TAG_BOOST  # more lift of the language kind where languages are echoed (_echo_languages)
ECHO_MIN_ITEMS = 3  # calibration items asked for a language before its tag echoes the question
FSMN_SCALE = 0.3  # of the random FSMN memory taps (see _shape_queries)

_ARCH: dict[str, dict[str, int]] = {
    "tiny": {"dim": 64, "heads": 4, "units": 128, "blocks": 3, "tp_blocks": 1, "vocab": TRAINED_VOCAB,
             "calib_items": 32, "calib_frames": 120},
    "large": {"dim": 512, "heads": 4, "units": 2048, "blocks": 50, "tp_blocks": 20, "vocab": 25055,
              "calib_items": 6, "calib_frames": 40},
}


def write_tiny_sensevoice(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a randomly initialised SenseVoice-Small model folder.

    Args:
        out_dir: folder to create (or overwrite the model files in).
        size: ``tiny`` for tests and the demo, ``large`` for the SenseVoice-Small architecture.
        seed: random seed; the same seed gives the same bytes.

    Returns:
        The model folder, ready for ``AutoModel(model=str(path))`` and ``asr.model = path``.
    """
    if size not in SIZES:
        raise ValueError(f"size = {size!r} is not allowed; choose one of {', '.join(SIZES)}")
    arch = _ARCH[size]
    proto = pad_vocabulary(train_tokenizer(), arch["vocab"])
    pieces = _pieces(proto)
    config = sensevoice_config(size)
    model = _build_model(config, len(pieces), seed)
    _shape_queries(model, seed)
    _shape_ctc_head(model, pieces, seed, arch["calib_items"], arch["calib_frames"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / BPE_MODEL).write_bytes(proto)
    (out / "tokens.json").write_text(json.dumps(pieces, ensure_ascii=False, indent=0), encoding="utf-8")
    (out / "am.mvn").write_text(am_mvn_text(), encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    (out / "configuration.json").write_text(json.dumps(_configuration(), indent=2))
    torch.save(model.state_dict(), out / "model.pt")
    return out


def sensevoice_config(size: str) -> dict[str, Any]:
    """The config.yaml content of a SenseVoice-Small model of ``size`` (see ``SIZES``)."""
    arch = _ARCH[size]
    return {
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {"output_size": arch["dim"], "attention_heads": arch["heads"],
                         "linear_units": arch["units"], "num_blocks": arch["blocks"],
                         "tp_blocks": arch["tp_blocks"], "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                         "attention_dropout_rate": 0.1, "input_layer": "pe",
                         "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
                         "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm"},
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": {**FRONTEND_CONF, "cmvn_file": None},  # configuration.json names am.mvn
        "specaug": None,
        "specaug_conf": None,
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "normalize": None,
    }


def _configuration() -> dict[str, Any]:
    """configuration.json as on the hub: FunASR resolves the files it names against the folder."""
    return {"framework": "pytorch", "task": "auto-speech-recognition", "model": {"type": "funasr"},
            "pipeline": {"type": "funasr-pipeline"},
            "file_path_metas": {"init_param": "model.pt", "config": "config.yaml",
                                "tokenizer_conf": {"bpemodel": BPE_MODEL},
                                "frontend_conf": {"cmvn_file": "am.mvn"}}}


def train_tokenizer(vocab_size: int = TRAINED_VOCAB) -> bytes:
    """A SentencePiece BPE model trained on the bundled zh/en/yue/ja/ko text, as serialized bytes.

    Single-threaded and without sampling or shuffling, so the same text gives the same bytes.
    """
    import sentencepiece as spm

    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=out, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=list(ALL_TAGS),
        add_dummy_prefix=False,  # SenseVoice writes "<|woitn|>and so", no "▁" before the first word
        normalization_rule_name="identity",  # keep full-width CJK punctuation as the model writes it
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
    return out.getvalue()


def pad_vocabulary(proto: bytes, vocab_size: int) -> bytes:
    """The tokenizer with single CJK, then Hangul, characters appended up to ``vocab_size`` pieces.

    The large model's output layer then has the trained model's width (and cost), and the pieces
    are characters such a vocabulary really holds.
    """
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = pb.ModelProto()
    model.ParseFromString(proto)
    have = {p.piece for p in model.pieces}
    lowest = min(p.score for p in model.pieces)
    chars = (chr(c) for c in [*range(0x4E00, 0xA000), *range(0xAC00, 0xD7A4)])
    for ch in chars:
        if len(model.pieces) >= vocab_size:
            break
        if ch not in have:
            model.pieces.add(piece=ch, score=lowest - 1.0, type=pb.ModelProto.SentencePiece.NORMAL)
    if len(model.pieces) != vocab_size:
        raise ValueError(f"cannot make a vocabulary of {vocab_size} pieces from {len(model.pieces)}")
    return model.SerializeToString()


def _pieces(proto: bytes) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=proto)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _shape_queries(model: torch.nn.Module, seed: int) -> None:
    """Give the random model query embeddings and memory taps a trained model would have.

    The language rows (and the two text normalisation rows) share one vector plus a small part of
    their own, as rows that play one role do; the FSMN memory taps are scaled down, so that a frame's
    own input dominates its output over its neighbours'. Both keep each query frame recognisable
    whatever the audio next to it, which the discriminants of ``_shape_ctc_head`` rely on.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    table = model.embed.weight
    with torch.no_grad():
        for rows in (sorted(set(model.lid_dict.values())), sorted(set(model.textnorm_dict.values()))):
            shared = torch.randn(table.shape[1], generator=gen)
            for row in rows:
                table[row] = shared + 0.25 * torch.randn(table.shape[1], generator=gen)
        for name, param in model.encoder.named_parameters():
            if "fsmn_block" in name:
                param.mul_(FSMN_SCALE)


def _shape_ctc_head(model: torch.nn.Module, pieces: list[str], seed: int, n_items: int, longest: int) -> None:
    """Make the random model answer each query frame with a tag of its kind, and be blank most of the time.

    ``<s>`` and ``</s>`` are suppressed: SenseVoice's CTC never emits them.

    For each query frame a linear discriminant of the encoder outputs separates that frame from all
    others on calibration features; adding it to the output rows of that kind's tags lifts them by
    at least ``TAG_BOOST`` there and lowers them as much elsewhere. Then ``_echo_languages``.
    """
    outputs, slot, lid = _calibration_outputs(model, seed, n_items, longest)
    index = {p: i for i, p in enumerate(pieces)}
    weight = model.ctc.ctc_lo.weight.detach().double().clone()
    bias = model.ctc.ctc_lo.bias.detach().double().clone()
    for k, names in enumerate((LANGUAGE_TAGS, EMOTION_TAGS, EVENT_TAGS, ITN_TAGS)):
        direction, offset = _discriminant(outputs, slot == k)
        ids = [index[tag(n)] for n in names]
        weight[ids] += TAG_BOOST * direction
        bias[ids] -= TAG_BOOST * offset
    _echo_languages(model, outputs, slot, lid, [index[tag(n)] for n in LANGUAGE_TAGS], weight, bias)
    bias[[1, 2]] -= 2 * TAG_BOOST  # <s> and </s> are no CTC outputs of a trained model
    bias[0] += _blank_shift(outputs[slot == N_QUERIES], weight, bias)
    with torch.no_grad():
        model.ctc.ctc_lo.weight.copy_(weight.float())
        model.ctc.ctc_lo.bias.copy_(bias.float())


def _echo_languages(model: torch.nn.Module, outputs: torch.Tensor, slot: torch.Tensor, lid: torch.Tensor,
                    tag_ids: list[int], weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Make the language frame answer the language it was asked for, as the trained model does.

    Given ``asr.language: en`` the trained SenseVoice writes ``<|en|>`` in its language frame. Here a
    discriminant per language separates the language frames of items asked for it from every other
    frame, and lifts that language's tag there by ``TAG_BOOST`` (lowering it elsewhere), so a forced
    language reaches ``segments.language`` in the tests and the demo. The language frames of ``auto``
    items take no part in these fits, so no language is pushed down there: which one ``auto``
    answers depends on the audio. A language needs ``ECHO_MIN_ITEMS`` calibration items (the large
    model, calibrated on a few, gets no echo).
    """
    asked = [(tag_id, (slot == 0) & (lid == int(model.lid_dict[name])))
             for name, tag_id in zip(LANGUAGE_TAGS, tag_ids)]
    asked = [(tag_id, mine) for tag_id, mine in asked if int(mine.sum()) >= ECHO_MIN_ITEMS]
    if not asked:
        return
    # The language frames, lifted (and the other frames suppressed) once more for every language tag:
    # each per-language discriminant rests on a few frames, and on audio unlike the calibration's it
    # must not lift a language tag into a speech frame.
    kind, kind_offset = _discriminant(outputs, slot == 0)
    weight[tag_ids] += ECHO_GUARD * kind
    bias[tag_ids] -= ECHO_GUARD * kind_offset
    fit = ~((slot == 0) & (lid == int(model.lid_dict["auto"])))
    for tag_id, mine in asked:
        try:
            direction, offset = _discriminant(outputs[fit], mine[fit])
        except RuntimeError:
            continue  # that language is not echoed: its frame answers as with auto
        weight[tag_id] += TAG_BOOST * direction
        bias[tag_id] -= TAG_BOOST * offset


def _calibration_outputs(model: torch.nn.Module, seed: int, n_items: int, longest: int
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder outputs (frames, dim) in float64 of random speech-like features, each after the four
    queries (over every language and text normalisation), each frame's slot (0-3 the queries,
    4 speech), and the language query row of its item."""
    encoder = copy.deepcopy(model.encoder).double().eval()
    table = model.embed.weight.detach().double()
    languages = sorted(set(model.lid_dict.values()))
    norms = sorted(set(model.textnorm_dict.values()))
    gen = torch.Generator().manual_seed(seed + 2)
    outputs, slots, lids = [], [], []
    with torch.no_grad():
        for item in range(n_items):
            n = int(torch.randint(8, longest + 1, (1,), generator=gen))
            lid = languages[item % len(languages)]
            queries = table[[lid, 1, 2, norms[item % len(norms)]]]
            x = torch.cat((queries, _speech_like_features(n, gen)))[None]
            outputs.append(encoder(x, torch.tensor([n + N_QUERIES]))[0][0])
            slots.append(torch.tensor([0, 1, 2, 3] + [N_QUERIES] * n))
            lids.append(torch.full((n + N_QUERIES,), lid))
    return torch.cat(outputs), torch.cat(slots), torch.cat(lids)


def _speech_like_features(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 560) float64 features shaped like normalised log-mel LFR frames of speech.

    Per utterance a level and a spectral tilt, per 10 ms frame a loudness that rises and falls
    (syllables, pauses), noise on top; then 7 frames stacked every 6, as the LFR frontend does.
    """
    n_mels, lfr_m, lfr_n = FRONTEND_CONF["n_mels"], FRONTEND_CONF["lfr_m"], FRONTEND_CONF["lfr_n"]
    frames = n * lfr_n + lfr_m
    bins = torch.linspace(-1.0, 1.0, n_mels, dtype=torch.float64)
    level, tilt = (0.5 * torch.randn(2, generator=gen, dtype=torch.float64)).tolist()
    walk = torch.cumsum(0.25 * torch.randn(frames, generator=gen, dtype=torch.float64), 0)
    loudness = torch.sin(walk) * 0.8
    noise = 0.4 * torch.randn(frames, n_mels, generator=gen, dtype=torch.float64)
    fbank = level + tilt * bins[None, :] + loudness[:, None] + noise
    starts = torch.arange(n) * lfr_n
    return torch.stack([fbank[s: s + lfr_m].reshape(-1) for s in starts.tolist()])


def _discriminant(outputs: torch.Tensor, mine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(direction, offset) with ``outputs @ direction - offset`` >= 1 on ``mine`` and <= -1 elsewhere.

    Raises:
        RuntimeError: the frames cannot be told apart linearly (another seed will do).
    """
    h, mine = outputs.numpy(), mine.numpy()
    w = _logistic_fit(np.c_[h, np.ones(len(h))], mine)
    score = h @ w[:-1] + w[-1]
    low, high = score[mine].min(), score[~mine].max()
    if low <= high:
        raise RuntimeError("the random encoder's query frames are not linearly separable; use another seed")
    half = (low - high) / 2
    offset = (low + high) / 2 - w[-1]
    return torch.from_numpy(w[:-1] / half), torch.tensor(offset / half, dtype=torch.float64)


def _logistic_fit(x: np.ndarray, positive: np.ndarray, ridge: float = 1e-4, steps: int = 40) -> np.ndarray:
    """Class-balanced, ridge-regularised logistic regression by Newton steps (deterministic, float64)."""
    weight = np.where(positive, 0.5 / positive.sum(), 0.5 / (~positive).sum())
    beta = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (weight * (p - positive)) + ridge * beta
        hess = (x.T * (weight * p * (1.0 - p))) @ x + ridge * np.eye(x.shape[1])
        beta -= np.linalg.solve(hess, grad)
    return beta


def _blank_shift(speech: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
    """The blank bias change after which blank wins ``BLANK_SHARE`` of the calibration speech frames."""
    logits = speech @ weight.T + bias
    best_other = logits[:, 1:].max(dim=1).values
    return float(np.quantile((best_other - logits[:, 0]).numpy(), BLANK_SHARE))
