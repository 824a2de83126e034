"""The Paraformer family (CIF): ``Paraformer``, ``BiCifParaformer`` and ``SeacoParaformer``.

Decoding calls the model's own parts (encode, CIF predictor, decoder) rather than FunASR's
``generate``/``inference``: those key results by position only when the batch is full, return a
single result for a batch whose items all decode to nothing, and recompute features from audio.
Here every item gets exactly one result, in the order of the batch.

What is Paraformer's own, and lives here rather than in the stage:

- ``PadInvariantModel``: stock Paraformer's CIF predictor reads the first padded encoder frame, so
  the frames past each item's length are zeroed before it (``asr.pad_invariant``).
- Token times from the CIF curves (FunASR's ``ts_prediction_lfr6_standard``, called the right way
  round), from the upsampled second CIF of BiCif and SeACo models.
- Half precision: the CIF predictor stays float32 and the decoder's masks follow the model's dtype.
- The ``cif_v1`` IndexError fallback of FunASR 1.4.16 (``_calc_predictor``).
- SeACo-Paraformer's hotwords (``asr.hotwords``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from vadpack.asr import attention, invariant
from vadpack.asr.config import AsrConfig
from vadpack.asr.types import LoadedModel, SegmentResult
from vadpack.core.configtools import ConfigError
from vadpack.core.funasr import funasr_attr

UPSAMPLED_PREDICTORS = ("CifPredictorV3",)  # BiCif/SeACo: a second CIF made for timestamps
TOKEN_FILES = ("tokens.json", "tokens.txt")


@dataclass(frozen=True, slots=True, eq=False)
class ParaformerFamily:
    """The Paraformer model family: how to decode a padded batch with a CIF model.

    Attributes:
        pad_invariant: decode through ``PadInvariantModel`` (``asr.pad_invariant``).
        hotword_ids: token ids of the configured hotwords (SeACo-Paraformer only), else None.
    """

    name: ClassVar[str] = "paraformer"
    model_classes: ClassVar[tuple[str, ...]] = ("Paraformer", "BiCifParaformer", "SeacoParaformer")
    folder_files: ClassVar[str] = "config.yaml, tokens.json, am.mvn and model.pt"

    pad_invariant: bool = True
    hotword_ids: tuple[tuple[int, ...], ...] | None = None

    @staticmethod
    def missing_files(folder: Path, config: dict[str, Any]) -> list[str]:
        """What a Paraformer folder lacks beyond config.yaml, am.mvn and model.pt: its token list."""
        return [] if any((folder / name).is_file() for name in TOKEN_FILES) else [" or ".join(TOKEN_FILES)]

    @staticmethod
    def check_loaded(spec: str, model: torch.nn.Module, kwargs: dict[str, Any]) -> None:
        """Refuse a loaded model this family cannot decode, naming what is wrong."""
        for method in ("encode", "calc_predictor", "cal_decoder_with_predictor"):
            if not hasattr(model, method):
                raise ConfigError(f"asr.model = {spec!r} is a {type(model).__name__} without {method}; vadpack "
                                 "decodes Paraformer, BiCifParaformer and SeacoParaformer models")
        if kwargs.get("tokenizer") is None:
            raise ConfigError(f"asr.model = {spec!r}: config.yaml names no tokenizer")

    @staticmethod
    def prepare(model: torch.nn.Module, dtype: torch.dtype) -> None:
        """Make a model cast to ``dtype`` decode (once per loaded model): see the two functions."""
        if dtype != torch.float32:
            keep_float32_predictor(model)
            cast_decoder_masks(model)

    @staticmethod
    def check_settings(cfg: AsrConfig, model_class: str | None) -> None:
        """Refuse asr settings this family cannot honour, before any work (``model_class`` None: unknown).

        Raises:
            ConfigError: a SenseVoice setting is set (``asr.language``, ``asr.use_itn``), or hotwords
                are set for a class known not to be SeACo-Paraformer.
        """
        _refuse_sensevoice_settings(cfg, model_class or "Paraformer")
        if cfg.hotwords and model_class is not None and model_class != "SeacoParaformer":
            raise ConfigError(f"asr.hotwords needs a SeACo-Paraformer model, but {cfg.model!r} is a "
                              f"{model_class}; remove asr.hotwords or use a SeACo-Paraformer model")

    @classmethod
    def from_model(cls, model: torch.nn.Module, tokenizer: Any, frontend: Any, cfg: AsrConfig) -> ParaformerFamily:
        """The family for ``cfg``: the padding wrapper on or off, the hotwords tokenised.

        Raises:
            ValueError: a SenseVoice setting is set (``asr.language``, ``asr.use_itn``), or hotwords
                are set for a model that does not support them.
        """
        cls.check_settings(cfg, type(model).__name__)
        return cls(pad_invariant=cfg.pad_invariant,
                   hotword_ids=_hotword_ids(model, cfg, tokenizer, frontend))

    def wrap(self, model: torch.nn.Module) -> Any:
        """What decoding calls: the padding-invariance wrapper, or the model itself."""
        return PadInvariantModel(model) if self.pad_invariant else model

    def decode(self, lm: LoadedModel, speech: torch.Tensor, speech_lengths: torch.Tensor,
               segment_ms: Sequence[int]) -> list[SegmentResult]:
        """Decode padded features: exactly one result per item, in order (see ``_decode``)."""
        return _decode(lm, speech, speech_lengths, segment_ms)


def _refuse_sensevoice_settings(cfg: AsrConfig, model_class: str) -> None:
    # An error, not a warning: a user who asks for English and gets what paraformer-zh hears would
    # not notice from the tables, which then hold the wrong language under the asked-for setting.
    if cfg.language != "auto":
        raise ConfigError(f"asr.language = {cfg.language!r} applies to SenseVoice models only, but {cfg.model!r} is "
                         f"a {model_class}, which decodes the language it was trained on; set asr.language: auto")
    if cfg.use_itn:
        raise ConfigError(f"asr.use_itn = true applies to SenseVoice models only, but {cfg.model!r} is a "
                         f"{model_class}, which writes no punctuation or digits itself; set asr.use_itn: false "
                         "(stitch.punc_model adds punctuation)")


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


# ---- decoding ---------------------------------------------------------------------------------

def _decode(lm: LoadedModel, speech: torch.Tensor, speech_lengths: torch.Tensor,
            segment_ms: Sequence[int]) -> list[SegmentResult]:
    net = lm.net
    out = net.encode(speech, speech_lengths)
    enc, enc_lens = (out[0][0] if isinstance(out[0], tuple) else out[0]), out[1]
    # In half precision the CIF predictor stays float32 (keep_float32_predictor): its
    # integration mixes float32 masks into the weights, and float32 keeps the token count closest.
    cif_enc = enc.to(predictor_dtype(lm))
    per_item = lm.pad_invariant and invariant.installed(lm.funasr_model)  # the CPU's float32 promise
    embeds, token_num, alphas, peaks = _calc_predictor(net, cif_enc, enc_lens, per_item)
    token_num = token_num.round().long()
    if int(token_num.max()) < 1:  # FunASR returns nothing here; we return B empty results
        return [SegmentResult() for _ in segment_ms]
    log_probs = _decoder_log_probs(lm, enc, enc_lens, embeds.to(enc.dtype), token_num)
    ids = log_probs.argmax(dim=-1).cpu()
    stamps = _timestamp_inputs(lm, cif_enc, enc_lens, token_num, alphas, peaks)
    counts = token_num.cpu().tolist()
    return [_item_result(lm, ids[i, : counts[i]].tolist(), stamps[i], segment_ms[i])
            for i in range(len(segment_ms))]


def predictor_dtype(lm: LoadedModel) -> torch.dtype:
    """The CIF predictor's dtype: float32 in every precision (``keep_float32_predictor``)."""
    return next(lm.funasr_model.predictor.parameters()).dtype


def _calc_predictor(net, enc: torch.Tensor, enc_lens: torch.Tensor, per_item: bool) -> tuple[torch.Tensor, ...]:
    """The CIF predictor's (embeds, token counts, alphas, peaks) for a batch.

    With ``per_item`` (the CPU's float32 path, ``asr.invariant``) each item runs alone on its own frames:
    the predictor's convolution and its sigmoid take other kernels, and round otherwise, for another
    batch shape (measured: a 37-frame item's CIF weights moved by 7e-9 in a batch of 8), and the
    predictor is a few layers against the encoder's 50.

    FunASR 1.4.16's ``cif_v1`` raises IndexError when the *last* item of a batch fires no token while
    an earlier one does (it zeroes the frame one past the end). The batch is then run one item at a
    time too, which gives each item the same result: encoder frames past an item's length are zeros,
    so an item's CIF does not depend on its batch.
    """
    if not per_item:
        try:
            return net.calc_predictor(enc, enc_lens)[:4]
        except IndexError:
            if enc.size(0) == 1:
                raise
    lens = enc_lens.tolist() if per_item else [enc.size(1)] * enc.size(0)
    parts = [net.calc_predictor(enc[i: i + 1, :n], enc_lens[i: i + 1])[:4] for i, n in enumerate(lens)]
    return (_stacked([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
            _stacked([p[2] for p in parts]), _stacked([p[3] for p in parts]))


def _stacked(items: list[torch.Tensor]) -> torch.Tensor:
    """Per-item (1, steps, ...) tensors -> (batch, longest, ...), zero padded along the steps."""
    longest = max(t.size(1) for t in items)
    return torch.cat([torch.nn.functional.pad(t, (0, 0) * (t.dim() - 2) + (0, longest - t.size(1))) for t in items])


def _decoder_log_probs(lm: LoadedModel, enc: torch.Tensor, enc_lens: torch.Tensor, embeds: torch.Tensor,
                       token_num: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities; SeACo-Paraformer biases them towards the hotwords.

    From 50 hotwords on, SeACo first keeps the 50 that score best over the whole batch, so only then
    can a result depend on its batch.
    """
    with attention.token_lengths(token_num.tolist()):  # cross-attention on each item's own tokens (CPU)
        if hasattr(lm.funasr_model, "_seaco_decode_with_ASF"):
            ids = lm.family.hotword_ids
            hotwords = [list(w) for w in ids] if ids else None
            return lm.net._seaco_decode_with_ASF(enc, enc_lens, embeds, token_num, hw_list=hotwords)
        return lm.net.cal_decoder_with_predictor(enc, enc_lens, embeds, token_num)[0]


@dataclass(frozen=True, slots=True)
class _Stamps:
    """One item's CIF curves, what FunASR's timestamp function reads (CPU tensors, float32).

    Attributes:
        alphas: the CIF weight of each frame, what the predictor integrates.
        peaks: the CIF integrator after each frame; at or above the threshold where it fires.
        upsample_rate: CIF frames per encoder frame (1 for the main CIF, 3 for BiCif's second CIF).
    """

    alphas: torch.Tensor
    peaks: torch.Tensor
    upsample_rate: int


def cif_stamps(alphas: torch.Tensor, peaks: torch.Tensor, frames: Sequence[int],
               upsample_rate: int = 1) -> list[_Stamps]:
    """Each item's CIF curves, cut to its own ``frames`` so that padding never reaches its timestamps.

    Args:
        alphas: (batch, time) CIF weights, as the predictor returns them.
        peaks: (batch, time) CIF integrator, as the predictor returns it.
        frames: CIF frames of each item.
        upsample_rate: CIF frames per encoder frame.
    """
    alphas, peaks = alphas.float().cpu(), peaks.float().cpu()
    width = min(alphas.shape[-1], peaks.shape[-1])
    return [_Stamps(alphas=alphas[i, : min(n, width)], peaks=peaks[i, : min(n, width)],
                    upsample_rate=upsample_rate) for i, n in enumerate(frames)]


def _timestamp_inputs(lm: LoadedModel, enc: torch.Tensor, enc_lens: torch.Tensor, token_num: torch.Tensor,
                      alphas: torch.Tensor, peaks: torch.Tensor) -> list[_Stamps]:
    """Each item's CIF curves for its timestamps.

    Paraformer derives timestamps from the main CIF, one frame past the encoder length for the tail.
    BiCif and SeACo models have a second, 3x upsampled CIF made for timestamps; it runs a
    bidirectional LSTM over the frames, whose backward pass would carry state in from the padding,
    so it runs on each item alone.
    """
    lens = enc_lens.cpu().tolist()
    predictor = lm.funasr_model.predictor
    if type(predictor).__name__ in UPSAMPLED_PREDICTORS:
        return [_upsampled_stamps(lm, enc[i: i + 1, :n], enc_lens[i: i + 1], token_num[i: i + 1])
                for i, n in enumerate(lens)]
    tail = 1 if float(getattr(predictor, "tail_threshold", 0.0)) > 0.0 else 0
    return cif_stamps(alphas, peaks, [n + tail for n in lens])


def _upsampled_stamps(lm: LoadedModel, enc: torch.Tensor, enc_lens: torch.Tensor,
                      token_num: torch.Tensor) -> _Stamps:
    _, _, us_alphas, us_peaks = lm.net.calc_predictor_timestamp(enc, enc_lens, token_num)
    rate = int(getattr(lm.funasr_model.predictor, "upsample_times", 3))  # FunASR assumes 3, as trained
    return cif_stamps(us_alphas, us_peaks, [rate * int(enc_lens[0])], rate)[0]


def _item_result(lm: LoadedModel, ids: list[int], stamps: _Stamps, segment_ms: int) -> SegmentResult:
    model = lm.funasr_model
    ids = [i for i in ids if i not in (model.blank_id, model.sos, model.eos)]
    tokens = tuple(lm.tokenizer.ids2tokens(ids))
    if not tokens:
        return SegmentResult()
    starts, ends = token_times(stamps, tokens, segment_ms)
    return SegmentResult(tokens=tokens,
                         token_start_ms=starts, token_end_ms=ends)


def token_times(stamps: _Stamps, tokens: tuple[str, ...], segment_ms: int) -> tuple[tuple[int, ...], ...]:
    """Start and end of each token in ms, relative to the segment and clamped to [0, segment_ms].

    FunASR's rule: n tokens need n + 1 boundaries, the frames where the CIF fires. When ``peaks``
    does not fire n + 1 times (the main CIF fires once per token, so usually it does not), the
    ``alphas`` are scaled to sum to n + 1 and integrated again. Token k runs from boundary k to
    boundary k + 1, both moved back 1.5 frames (a frame is 60 ms / ``upsample_rate``); a token longer
    than 12 frames is cut there, and the last one ends at the end of the curves, or halfway there
    when its boundary lies more than 5 frames before it.

    FunASR's timestamp function can start before 0 (the 1.5-frame shift) and end past the segment
    (the tail frame), and on rare alignments it returns one pair fewer or more than there are tokens;
    a missing pair takes the span from the previous end to the segment end.
    """
    ts_prediction_lfr6_standard = funasr_attr("utils.timestamp_tools", "ts_prediction_lfr6_standard")

    # By keyword: FunASR 1.4.16's Paraformer.inference passes these two the other way round (FunASR
    # issue #3723), which returns the right number of times with wrong boundaries. clone: the
    # function rescales the alphas in place.
    _, pairs = ts_prediction_lfr6_standard(us_alphas=stamps.alphas.clone(), us_peaks=stamps.peaks.clone(),
                                           char_list=list(tokens), vad_offset=0,
                                           upsample_rate=stamps.upsample_rate)
    pairs = list(pairs[: len(tokens)])
    while len(pairs) < len(tokens):
        pairs.append([pairs[-1][1] if pairs else 0, segment_ms])
    starts, ends = [], []
    for start, end in pairs:
        start = min(max(int(start), 0), segment_ms)
        starts.append(start)
        ends.append(min(max(int(end), start), segment_ms))
    return tuple(starts), tuple(ends)


def _hotword_ids(model: torch.nn.Module, cfg: AsrConfig, tokenizer: Any,
                 frontend: Any) -> tuple[tuple[int, ...], ...] | None:
    """Token ids of ``cfg.hotwords``, tokenised the way SeACo-Paraformer's own inference does
    (``check_settings`` has refused hotwords for any other class)."""
    if not cfg.hotwords:
        return None
    ids = model.generate_hotwords_list(" ".join(cfg.hotwords), tokenizer=tokenizer, frontend=frontend)
    return tuple(tuple(int(i) for i in word) for word in ids)
