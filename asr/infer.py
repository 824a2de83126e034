"""Decoding a batch of padded features into one result per item, and halving batches on OOM.

Decoding calls the model's own parts (encode, CIF predictor, decoder) rather than FunASR's
``generate``/``inference``: those key results by position only when the batch is full, return a
single result for a batch whose items all decode to nothing, and recompute features from audio.
Here every item gets exactly one result, in the order of the batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asr.types import FeatureBatch, LoadedModel, SegmentResult
from core.faults import fault_arg

UPSAMPLED_PREDICTORS = ("CifPredictorV3",)  # BiCif/SeACo: a second CIF made for timestamps


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Results of one batch, in batch order, and how often it had to be halved."""

    results: tuple[SegmentResult, ...]
    splits: int


def decode_batch(lm: LoadedModel, batch: FeatureBatch) -> BatchOutcome:
    """Decode a batch; on out-of-memory halve it and retry, down to single segments.

    A segment that runs out of memory on its own gets a failed result with the reason; the other
    segments still decode. Thanks to padding invariance, halves decode to the same results in
    float32; in bfloat16 and float16 a halved batch can change a segment's result.
    """
    lengths = batch.frames.astype(np.int64)
    ms = [item.duration_ms for item in batch.items]
    results, splits = _decode_or_split(lm, batch.feats, lengths, ms)
    return BatchOutcome(tuple(results), splits)


def _decode_or_split(lm: LoadedModel, feats: np.ndarray, lengths: np.ndarray,
                     segment_ms: list[int]) -> tuple[list[SegmentResult], int]:
    feats = feats[:, : int(lengths.max())]  # a half pads only to its own longest item
    try:
        return decode_features(lm, feats, lengths, segment_ms), 0
    except torch.OutOfMemoryError as e:
        reason = _first_line(e)
    # Only out here are the traceback's frames, and the GPU tensors they hold, released.
    _release_cuda_cache(lm.device)
    if len(lengths) == 1:
        return [SegmentResult(error=f"out of memory on its own ({reason})")], 0
    half = len(lengths) // 2
    left, n_left = _decode_or_split(lm, feats[:half], lengths[:half], segment_ms[:half])
    right, n_right = _decode_or_split(lm, feats[half:], lengths[half:], segment_ms[half:])
    return left + right, 1 + n_left + n_right


def decode_features(lm: LoadedModel, feats: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor,
                    segment_ms: Sequence[int]) -> list[SegmentResult]:
    """Decode padded features: exactly one result per item, in order.

    Args:
        lm: the loaded model.
        feats: (n_items, frames, feature_dim) post-LFR, post-CMVN features, zero padded.
        lengths: (n_items,) real frames per item.
        segment_ms: each segment's length in milliseconds; token times are clamped to it.

    Raises:
        torch.OutOfMemoryError: the batch does not fit (also injected by ``VADPACK_FAULTS=cuda_oom=N``).
    """
    _maybe_inject_oom(len(segment_ms))
    speech, speech_lengths = to_device(feats, lengths, lm)
    with torch.inference_mode(), exact_float32(lm.device, lm.dtype):
        return _decode(lm, speech, speech_lengths, segment_ms)


@contextlib.contextmanager
def exact_float32(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """On CUDA in float32, turn TF32 off for matmul and cuDNN while decoding; restore it after.

    TF32 rounds float32 inputs to 10 mantissa bits, and how a product is split over kernels depends
    on its shape, so a segment would decode differently alone and in a batch: float32 promises
    padding invariance on every device. bfloat16 and float16 are left alone (throughput modes).
    """
    if device.type != "cuda" or dtype != torch.float32:
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_device(feats: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor,
              lm: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Move features to the model's device: pinned host memory and an asynchronous copy on CUDA."""
    x = torch.as_tensor(feats)
    n = torch.as_tensor(lengths).to(torch.int32)
    if lm.device.type == "cuda":
        x = x.pin_memory().to(lm.device, non_blocking=True)
        n = n.pin_memory().to(lm.device, non_blocking=True)
    return x.to(lm.dtype), n


def _decode(lm: LoadedModel, speech: torch.Tensor, speech_lengths: torch.Tensor,
            segment_ms: Sequence[int]) -> list[SegmentResult]:
    net = lm.net
    out = net.encode(speech, speech_lengths)
    enc, enc_lens = (out[0][0] if isinstance(out[0], tuple) else out[0]), out[1]
    # In half precision the CIF predictor stays float32 (asr.model.keep_float32_predictor): its
    # integration mixes float32 masks into the weights, and float32 keeps the token count closest.
    cif_enc = enc.to(predictor_dtype(lm))
    embeds, token_num, alphas, peaks = _calc_predictor(net, cif_enc, enc_lens)
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
    """The CIF predictor's dtype: float32 in every precision (``asr.model.keep_float32_predictor``)."""
    return next(lm.funasr_model.predictor.parameters()).dtype


def _calc_predictor(net, enc: torch.Tensor, enc_lens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The CIF predictor's (embeds, token counts, alphas, peaks) for a batch.

    FunASR 1.4.16's ``cif_v1`` raises IndexError when the *last* item of a batch fires no token while
    an earlier one does (it zeroes the frame one past the end). The batch is then run one item at a
    time, which gives each item the same result: encoder frames past an item's length are zeros, so
    an item's CIF does not depend on its batch.
    """
    try:
        return net.calc_predictor(enc, enc_lens)[:4]
    except IndexError:
        if enc.size(0) == 1:
            raise
    parts = [net.calc_predictor(enc[i: i + 1], enc_lens[i: i + 1])[:4] for i in range(enc.size(0))]
    longest = max(p[0].size(1) for p in parts)
    embeds = torch.cat([torch.nn.functional.pad(p[0], (0, 0, 0, longest - p[0].size(1))) for p in parts])
    return (embeds, *(torch.cat([p[k] for p in parts]) for k in (1, 2, 3)))


def _decoder_log_probs(lm: LoadedModel, enc: torch.Tensor, enc_lens: torch.Tensor, embeds: torch.Tensor,
                       token_num: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities; SeACo-Paraformer biases them towards the hotwords.

    From 50 hotwords on, SeACo first keeps the 50 that score best over the whole batch, so only then
    can a result depend on its batch.
    """
    if hasattr(lm.funasr_model, "_seaco_decode_with_ASF"):
        hotwords = [list(w) for w in lm.hotword_ids] if lm.hotword_ids else None
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
    from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

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


def _maybe_inject_oom(n_items: int) -> None:
    """Test-only: ``VADPACK_FAULTS=cuda_oom=N`` makes a model call on more than N items run out of memory."""
    limit = fault_arg("cuda_oom")
    if limit is not None and n_items > int(limit or 0):
        raise torch.OutOfMemoryError(
            f"injected fault: CUDA out of memory on {n_items} items (cuda_oom={limit})")


def _release_cuda_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
