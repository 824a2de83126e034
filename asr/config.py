"""Configuration of the asr stage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar, Literal

from vadpack.asr.agreement import (
    HALF_PRECISION_AGREEMENT as HALF_PRECISION_AGREEMENT,  # measured, quoted by the run summary
)
from vadpack.core.configtools import check_choice, check_fields, check_range
from vadpack.core.device import check_device_spec
from vadpack.core.models import is_local_model as is_local_model  # the one model-spec rule, for asr's callers

DTYPES = ("float32", "float16", "bfloat16")
# SenseVoice's language queries (``asr.sensevoice`` builds its tags from these); ``auto`` lets it tell.
LANGUAGE_TAGS = ("zh", "en", "yue", "ja", "ko", "nospeech")
LANGUAGES = ("auto", *LANGUAGE_TAGS)
# Part of the store key: a result computed by older decoding code is never reused after a fix.
# 2: Paraformer token times from the CIF alphas and peaks in the right order (FunASR issue #3723).
# 3: store rows carry language, emotion and event (null for Paraformer); older parts lack them.
RESULTS_VERSION = 3


@dataclass(frozen=True, slots=True)
class AsrConfig:
    """Options of the asr stage.

    Attributes:
        model: a FunASR model id (``paraformer-zh``, fetched from its hub) or a local model folder
            holding config.yaml, tokens.json, am.mvn and model.pt.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: model precision. float32 gives the same tokens and times alone and in any batch;
            bfloat16 and float16 are throughput modes for CUDA whose results differ from float32's and
            between batchings (``asr.agreement``). They run on the CPU too, to check
            results (slowly without bfloat16/float16 units such as Intel AMX).
        threads: torch intra-op threads for the model process; 0 means one per core.
        feature_workers: CPU processes that compute features ahead of the model; 0 computes them inline;
            ``auto`` is 0 on the CPU (features cost ~1 % of the model's time there, the model already
            uses every core, and a worker takes seconds to start) and min(8, cores / 2) on CUDA.
        prefetch: batches prepared ahead of the model.
        batches_per_part: batches per transcript part file (the unit of resume after a crash).
        pad_invariant: Paraformer: zero encoder frames past each item's length so padding never changes a
            result (SenseVoice's encoder masks padding itself; the setting does not change it). On the CPU
            the encoder also runs on each item's own frames whatever this says (``asr.attention``,
            ``asr.packed``), so a segment's result there is bit-identical in any batch.
        hotwords: hotwords for SeACo-Paraformer models.
        language: SenseVoice only: ``auto`` lets the model tell the language of each segment (it is
            written to ``segments.language``); a code (zh, en, yue, ja, ko, nospeech) makes it decode
            every segment as that language. Anything but ``auto`` is an error for Paraformer models,
            which decode the language they were trained on.
        use_itn: SenseVoice only: the model writes punctuation, digits and casing itself (inverse
            text normalisation). ``true`` is an error for Paraformer models (use ``stitch.punc_model``).
        warmup: run one small batch first so the first timed batch is not paying for start-up.
        replicas: model replicas, each a process with its own ``threads``, decoding disjoint batches
            from one queue. ``auto``: on the CPU one per core (measured: 2 x 1 thread beat 1 x 2 threads
            on 2 cores), at most as many as half the free memory holds, and only from half an hour of
            audio to decode on (a replica takes seconds to start); on CUDA one per device
            (``asr.device: cuda`` or ``auto`` uses every GPU; ``cuda:N`` only that one).
        compile: ``torch.compile`` the encoder (float32 results are identical to eager; the compiled
            graph is cached on disk, by default in ~/.cache/vadpack/torchinductor). The first compile
            takes minutes on the CPU.
    """

    # Change speed, never a transcript: padding invariance makes results independent of batching,
    # replicas decode whole batches, and a compiled encoder gives eager's tokens (tested).
    SPEED_ONLY: ClassVar[tuple[str, ...]] = ("threads", "feature_workers", "prefetch", "warmup", "batches_per_part",
                                             "replicas", "compile")

    model: str = "paraformer-zh"
    device: str = "auto"
    dtype: str = "float32"
    threads: int = 0
    feature_workers: int | Literal["auto"] = "auto"
    prefetch: int = 4
    batches_per_part: int = 16
    pad_invariant: bool = True
    hotwords: tuple[str, ...] = ()
    language: str = "auto"
    use_itn: bool = False
    warmup: bool = True
    replicas: int | str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        check_fields(self, "asr")
        if not self.model:
            raise ValueError("asr.model must be a FunASR model id or a local model folder")
        check_device_spec("asr.device", self.device)
        check_choice("asr.dtype", self.dtype, DTYPES)
        check_range("asr.threads", self.threads, 0, 1024)
        check_range("asr.feature_workers", self.feature_workers, 0, 256, auto=True)
        check_range("asr.prefetch", self.prefetch, 1, 1024)
        check_range("asr.batches_per_part", self.batches_per_part, 1, 1_000_000)
        check_range("asr.replicas", self.replicas, 1, 256, auto=True)
        if not isinstance(self.compile, bool):
            raise ValueError(f"asr.compile must be true or false, got {self.compile!r}")
        _check_hotwords(self.hotwords)
        check_choice("asr.language", self.language, LANGUAGES)
        if not isinstance(self.use_itn, bool):
            raise ValueError(f"asr.use_itn must be true or false, got {self.use_itn!r}")

    @property
    def n_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)

    def feature_workers_for(self, device_type: str) -> int:
        """The number of feature worker processes on a device of ``device_type`` (cpu or cuda)."""
        if self.feature_workers != "auto":
            return int(self.feature_workers)
        return 0 if device_type != "cuda" else max(1, min(8, (os.cpu_count() or 2) // 2))


def _check_hotwords(hotwords: object) -> None:
    # SeACo-Paraformer splits its hotword string on whitespace, so a word must not contain any.
    if not isinstance(hotwords, tuple) or not all(isinstance(w, str) for w in hotwords):
        raise ValueError(f"asr.hotwords must be a list of words, e.g. [阿里巴巴, 达摩院], got {hotwords!r}")
    bad = [w for w in hotwords if not w or len(w.split()) != 1]
    if bad:
        raise ValueError(f"asr.hotwords: {bad[0]!r} is not one word; give each hotword as its own list item")
