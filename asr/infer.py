"""Decoding a batch of padded features into one result per item, and halving batches on OOM.

The same for every model family: the features go to the model's device, the loaded model's family
(``asr.family``) decodes them into exactly one result per item, in the order of the batch, and a
batch that runs out of memory is halved. How a family decodes is its own (``asr.paraformer``,
``asr.sensevoice``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from vadpack.asr.types import FeatureBatch, LoadedModel, SegmentResult
from vadpack.core.oom import halve_on_oom, maybe_inject_oom


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

    def run(lo: int, hi: int) -> list[SegmentResult]:
        part = lengths[lo:hi]  # a part pads only to its own longest item
        return decode_features(lm, batch.feats[lo:hi, : int(part.max())], part, ms[lo:hi])

    results, splits = halve_on_oom(run, len(lengths), lm.device, lambda error: SegmentResult(error=error))
    return BatchOutcome(tuple(results), splits)


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
    maybe_inject_oom(len(segment_ms))
    speech, speech_lengths = to_device(feats, lengths, lm)
    with torch.inference_mode(), exact_float32(lm.device, lm.dtype):
        if lm.rows is not None and not lm.rows.row_independent and len(segment_ms) > 1:
            return _each_alone(lm, speech, speech_lengths, segment_ms)
        return lm.family.decode(lm, speech, speech_lengths, segment_ms)


def _each_alone(lm: LoadedModel, speech: torch.Tensor, speech_lengths: torch.Tensor,
                segment_ms: Sequence[int]) -> list[SegmentResult]:
    """Each item as a batch of its own, cut to its own frames: where this machine's probe found no row count
    at which a product's rows are independent of the others (``core.reproducible``), every product a segment
    takes part in then has a shape that depends on it alone, at some cost in speed."""
    results = []
    for i, n in enumerate(speech_lengths.tolist()):
        item = speech[i: i + 1, :n].clone()  # its own memory, as a batch of one has
        results += lm.family.decode(lm, item, speech_lengths[i: i + 1], segment_ms[i: i + 1])
    return results


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
