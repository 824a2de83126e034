"""The seam between the asr stage and a model family.

Packing, prefetching, OOM halving, part files and the store are the same for every model. What
differs is how a padded feature batch becomes results, which files a model folder needs, and what
must be read and checked once at load time. That is a family's job, and the family is chosen from
the loaded FunASR model's class, so the stage has no ``if sensevoice:`` anywhere:

- Paraformer (CIF): ``Paraformer``, ``BiCifParaformer``, ``SeacoParaformer``; ``asr.paraformer``.
- SenseVoice (CTC): ``SenseVoiceSmall``; ``asr.sensevoice``.

``asr.infer.decode_features`` calls ``lm.family.decode(lm, speech, speech_lengths, segment_ms)``
inside ``torch.inference_mode`` with the features already on the model's device, and gets exactly
one ``SegmentResult`` per item, in order. ``torch.OutOfMemoryError`` propagates, so the stage halves.

A family class is used in three steps:

1. Before FunASR loads a local folder: ``missing_files(folder, config)`` (``asr.model.check_model_folder``).
2. Once per loaded model (``asr.model`` caches the model per process): ``check_loaded(spec, model,
   kwargs)`` refuses what it cannot decode; ``prepare(model, dtype)`` readies a half-precision model.
3. Per config: ``from_model(model, tokenizer, frontend, cfg)`` reads what decoding needs (queries,
   hotwords, options) into a frozen family instance; ``wrap(model)`` is what decoding calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from vadpack.asr.config import AsrConfig
from vadpack.asr.paraformer import ParaformerFamily
from vadpack.asr.sensevoice import SenseVoiceFamily
from vadpack.asr.types import SegmentResult
from vadpack.core.configtools import ConfigError

FAMILY_CLASSES: tuple[type, ...] = (ParaformerFamily, SenseVoiceFamily)
FAMILIES: dict[str, type] = {name: cls for cls in FAMILY_CLASSES for name in cls.model_classes}


class ModelFamily(Protocol):
    """How one architecture decodes; an instance holds what was read from the model at load time."""

    name: ClassVar[str]  # paraformer | sensevoice: recorded in the store's part files
    model_classes: ClassVar[tuple[str, ...]]  # FunASR's class names it decodes
    folder_files: ClassVar[str]  # what a model folder holds, for error messages

    @staticmethod
    def missing_files(folder: Path, config: dict[str, Any]) -> list[str]:
        """The files the family needs that ``folder`` lacks (besides config.yaml, am.mvn, model.pt)."""
        ...

    @staticmethod
    def check_loaded(spec: str, model: torch.nn.Module, kwargs: dict[str, Any]) -> None:
        """Raise ValueError, naming what is wrong, for a loaded model the family cannot decode."""
        ...

    @staticmethod
    def check_settings(cfg: AsrConfig, model_class: str | None) -> None:
        """Raise ConfigError for an asr setting the family cannot honour (``model_class`` None: not known
        yet, as for a hub id before download); preflight calls it before any work, ``from_model`` again."""
        ...

    @staticmethod
    def prepare(model: torch.nn.Module, dtype: torch.dtype) -> None:
        """Ready a model already cast to ``dtype`` for decoding (once per loaded model)."""
        ...

    @classmethod
    def from_model(cls, model: torch.nn.Module, tokenizer: Any, frontend: Any, cfg: AsrConfig) -> ModelFamily:
        """The family for ``cfg``; ValueError for a setting the family does not support."""
        ...

    def wrap(self, model: torch.nn.Module) -> Any:
        """What decoding calls (``LoadedModel.net``): the model or a wrapper around it."""
        ...

    def decode(self, lm: Any, speech: torch.Tensor, speech_lengths: torch.Tensor,
               segment_ms: Sequence[int]) -> list[SegmentResult]:
        """Decode padded features: exactly one result per item, in order.

        Args:
            lm: the ``LoadedModel`` (net, tokenizer, device, dtype, family).
            speech: (n_items, frames, feature_dim) post-CMVN LFR features on the device, zero padded.
            speech_lengths: (n_items,) real frames per item.
            segment_ms: each segment's length; token times are relative to it and clamped to it.

        Raises:
            torch.OutOfMemoryError: the batch does not fit; the stage halves it and retries.
        """
        ...


def family_class(model_class: str) -> type[ModelFamily]:
    """The family that decodes FunASR models of class ``model_class``.

    Raises:
        ValueError: no family decodes that class.
    """
    cls = FAMILIES.get(model_class)
    if cls is None:
        raise ConfigError(f"vadpack has no model family for FunASR's {model_class}; it decodes "
                         f"{', '.join(FAMILIES)}")
    return cls


def family_factory(model_class: str) -> Any:
    """``from_model`` of the family that decodes ``model_class`` (see ``family_class``)."""
    return family_class(model_class).from_model
