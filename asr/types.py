"""Data types of the asr stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from vadpack.core.reproducible import RowProbe
from vadpack.core.types import Span


@dataclass(frozen=True, slots=True)
class FrontendInfo:
    """The feature frontend of a loaded model (FunASR's WavFrontend), enough to rebuild it in a worker.

    Attributes:
        name: FunASR's registered frontend class name.
        fs: sample rate the model expects.
        window: analysis window (``hamming``).
        n_mels: mel bins per 10 ms frame.
        frame_length_ms: analysis window length.
        frame_shift_ms: hop between fbank frames.
        lfr_m: fbank frames stacked into one low-frame-rate (LFR) frame.
        lfr_n: fbank frames between two LFR frames.
        cmvn_file: the global CMVN file (am.mvn).
        dither: always 0.0 here, so features repeat exactly.
    """

    name: str
    fs: int
    window: str
    n_mels: int
    frame_length_ms: int
    frame_shift_ms: int
    lfr_m: int
    lfr_n: int
    cmvn_file: str
    dither: float = 0.0

    @property
    def feature_dim(self) -> int:
        """Width of one LFR feature frame (560 for Paraformer)."""
        return self.n_mels * self.lfr_m

    @property
    def lfr_frame_ms(self) -> int:
        """Duration of one LFR frame, the model's time step (60 ms for Paraformer)."""
        return self.frame_shift_ms * self.lfr_n

    def frontend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the FunASR frontend class."""
        return {"fs": self.fs, "window": self.window, "n_mels": self.n_mels,
                "frame_length": self.frame_length_ms, "frame_shift": self.frame_shift_ms,
                "lfr_m": self.lfr_m, "lfr_n": self.lfr_n, "cmvn_file": self.cmvn_file, "dither": self.dither}


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A batch as the packer formed it: an id and its segments in order."""

    batch_id: int
    items: tuple[Span, ...]


@dataclass(frozen=True, slots=True, eq=False)
class FeatureBatch:
    """Features of one batch, ready for the model.

    Attributes:
        batch_id: the packer's batch id.
        items: the segments that have features, in batch order.
        feats: (n_items, max_frames, feature_dim) float32, zero padded past each item's length.
        frames: (n_items,) LFR frames of each item.
        failed: segments whose features could not be computed, with the reason.
        feature_s: CPU seconds spent on the features.
    """

    batch_id: int
    items: tuple[Span, ...]
    feats: np.ndarray
    frames: np.ndarray
    failed: tuple[tuple[Span, str], ...] = ()
    feature_s: float = 0.0

    @property
    def n_items(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """What the model decoded for one segment.

    Attributes:
        tokens: tokens as the model emits them, ``@@`` continuation markers included.
        token_start_ms: start of each token, relative to the segment, in [0, segment length].
        token_end_ms: end of each token, relative to the segment, in [start, segment length].
        error: why the segment failed; None when it decoded.
        language: the language the model heard (SenseVoice: zh, en, yue, ja, ko, nospeech); None for
            models that do not tell.
        emotion: the speaker's emotion (SenseVoice: neutral, happy, sad, angry, ..., unknown), or None.
        event: the audio event (SenseVoice: speech, bgm, applause, laughter, ..., unknown), or None.
    """

    tokens: tuple[str, ...] = ()
    token_start_ms: tuple[int, ...] = ()
    token_end_ms: tuple[int, ...] = ()
    error: str | None = None
    language: str | None = None
    emotion: str | None = None
    event: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class BatchMetrics:
    """Measurements of one batch.

    Attributes:
        batch_id: the packer's batch id.
        n_items: segments in the batch.
        padded_s: padded audio seconds the model computed (``n_items * longest``).
        audio_s: real audio seconds in the batch.
        wall_ms: time from asking for the batch to having its results.
        model_ms: time inside the model (including host-device copies and any OOM retries).
        peak_cuda_mb: peak CUDA memory allocated during the batch (0 on CPU).
        splits: times the batch was halved after running out of memory.
        failed: segments of the batch recorded as failed.
    """

    batch_id: int
    n_items: int
    padded_s: float
    audio_s: float
    wall_ms: float
    model_ms: float
    peak_cuda_mb: float
    splits: int
    failed: int

    def describe(self) -> str:
        """One log line."""
        return (f"asr: batch {self.batch_id}: {self.n_items} items, {self.padded_s:.1f} padded s, "
                f"{self.wall_ms:.0f} ms wall, {self.model_ms:.0f} ms model, "
                f"peak {self.peak_cuda_mb:.0f} MB CUDA, {self.splits} OOM splits, {self.failed} failed")


@dataclass(frozen=True, slots=True)
class AsrSummary:
    """Figures of one run of the asr stage.

    Attributes:
        audio_s: seconds of segment audio decoded in this run (skipped parts excluded).
        wall_s: wall time of the stage, model loading excluded.
        load_s: wall time spent loading the model.
        model_s: time the model was busy.
        xrt: audio seconds per wall second.
        model_busy: ``model_s / wall_s``, how well the model was kept fed.
        batches: batches decoded in this run.
        segments: segments written in this run (ok and failed).
        failed_segments: segments recorded as failed.
        parts_written: part files written in this run.
        already_stored: spans of the batches that the store already held (not decoded again).
        oom_splits: batches halved after running out of memory.
        feature_retries: batches whose features failed in a worker and were retried inline.
        peak_cuda_mb: the largest peak CUDA memory of any batch (0 on CPU).
        device: the torch device the model ran on.
        model: the model name recorded in the output metadata.
        replicas: decoding processes (``asr.replicas``).
        threads_per_replica: intra-op threads in each.
        replica_peak_rss_mb: the largest peak resident memory of a replica process (0: one process).
        batch_invariant: every segment's result is bit-identical in any batch, as alone (CPU, float32:
            every product a segment takes part in has a shape that depends on it alone or a row count
            measured row-independent on this machine, ``asr.invariant``); False on CUDA and in half
            precision, where results agree up to rounding.
        row_probe: what ``core.reproducible.probe_rows`` saw on this machine for the model's products,
            in words ('' where it did not run: CUDA, half precision, nothing decoded).
    """

    audio_s: float = 0.0
    wall_s: float = 0.0
    load_s: float = 0.0
    model_s: float = 0.0
    xrt: float = 0.0
    model_busy: float = 0.0
    batches: int = 0
    segments: int = 0
    failed_segments: int = 0
    parts_written: int = 0
    already_stored: int = 0
    oom_splits: int = 0
    feature_retries: int = 0
    peak_cuda_mb: float = 0.0
    device: str = "none"
    model: str = ""
    replicas: int = 1
    threads_per_replica: int = 0
    replica_peak_rss_mb: float = 0.0
    batch_invariant: bool = False
    row_probe: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Where asr decodes, cheaply described (no model loaded): what the packing budget depends on.

    Attributes:
        kind: ``cpu`` or ``cuda``.
        name: the device name (``cpu``, or e.g. ``NVIDIA H200``).
        total_bytes: the device's total memory (0 on the CPU).
    """

    kind: str
    name: str
    total_bytes: int = 0


@dataclass(frozen=True, slots=True)
class MemoryProbe:
    """What asr measured on a CUDA device for ``packer.budget_s: auto``.

    Attributes:
        device_name: the CUDA device's name.
        bytes_per_padded_s: peak memory per padded second of a maximum-length batch.
        free_bytes: free device memory with the model loaded.
    """

    device_name: str
    bytes_per_padded_s: float
    free_bytes: int


@dataclass(frozen=True, slots=True, eq=False)
class LoadedModel:
    """A FunASR model loaded for decoding, with the family that decodes it.

    Attributes:
        net: what decoding calls (``family.wrap``): the FunASR model, or Paraformer's
            padding-invariance wrapper around it.
        funasr_model: the FunASR model itself (a torch module in eval mode).
        tokenizer: FunASR's tokenizer (``ids2tokens``, ``tokens2text``; SentencePiece for SenseVoice).
        frontend: FunASR's feature frontend, for computing features inline.
        frontend_info: the frontend's settings, to rebuild it in worker processes.
        name: the model as configured (hub id or folder), recorded in output metadata.
        model_class: FunASR's class name (``Paraformer``, ``BiCifParaformer``, ``SeacoParaformer``,
            ``SenseVoiceSmall``).
        device: where the model runs.
        dtype: the model's precision.
        pad_invariant: ``asr.pad_invariant`` as configured (Paraformer wraps ``net`` for it).
        family: the model family that decodes it (``asr.family.ModelFamily``), chosen from
            ``model_class``; it holds what was read at load time (hotword ids, SenseVoice's queries).
        rows: on the CPU in float32, what ``core.reproducible.probe_rows`` measured for the model's
            linear layers on this machine (``asr.invariant``); None elsewhere.
    """

    net: Any
    funasr_model: Any
    tokenizer: Any
    frontend: Any
    frontend_info: FrontendInfo
    name: str
    model_class: str
    device: Any
    dtype: Any
    pad_invariant: bool
    family: Any
    rows: RowProbe | None = None
