"""The seam between the asr stage and a model family.

Packing, prefetching, OOM halving and part files are the same for every model. What differs is how
a padded feature batch becomes results, and what must be read and checked once at load time. That
is a family's job, and the family is chosen from the loaded FunASR model's class, so the stage has
no ``if sensevoice:`` anywhere:

- Paraformer (CIF): ``Paraformer``, ``BiCifParaformer``, ``SeacoParaformer``; today ``asr.infer``.
- SenseVoice (CTC): ``SenseVoiceSmall``; ``asr.sensevoice.SenseVoiceFamily``.

The stage calls ``lm.family.decode(lm, speech, speech_lengths, segment_ms)`` inside
``torch.inference_mode`` with the features already on the model's device, and gets exactly one
``SegmentResult`` per item, in order. ``torch.OutOfMemoryError`` propagates, so the stage halves.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import torch

from asr.types import SegmentResult

# FunASR model class -> "module:factory" of its family, imported only when such a model is loaded.
# (Phase 2 adds the Paraformer classes, whose decoding moves from asr.infer into a family.)
FAMILIES: dict[str, str] = {
    "SenseVoiceSmall": "asr.sensevoice:SenseVoiceFamily.from_model",
}


class ModelFamily(Protocol):
    """How one architecture decodes; an instance holds what was read from the model at load time."""

    name: ClassVar[str]
    model_classes: ClassVar[tuple[str, ...]]

    def decode(self, lm: Any, speech: torch.Tensor, speech_lengths: torch.Tensor,
               segment_ms: Sequence[int]) -> list[SegmentResult]:
        """Decode padded features: exactly one result per item, in order.

        Args:
            lm: the ``LoadedModel`` (net, tokenizer, device, dtype).
            speech: (n_items, frames, feature_dim) post-CMVN LFR features on the device, zero padded.
            speech_lengths: (n_items,) real frames per item.
            segment_ms: each segment's length; token times are relative to it and clamped to it.

        Raises:
            torch.OutOfMemoryError: the batch does not fit; the stage halves it and retries.
        """
        ...


class FamilyFactory(Protocol):
    """Builds a family for a loaded model: checks it and reads what decoding needs, once."""

    def __call__(self, model: torch.nn.Module, tokenizer: Any, frame_ms: int, options: Any) -> ModelFamily:
        ...


def family_factory(model_class: str) -> FamilyFactory:
    """The factory of the family that decodes FunASR models of class ``model_class``.

    Raises:
        ValueError: no family decodes that class.
    """
    target = FAMILIES.get(model_class)
    if target is None:
        raise ValueError(f"vadpack has no model family for FunASR's {model_class}; it decodes "
                         f"{', '.join(sorted(FAMILIES))} (and Paraformer, BiCifParaformer, SeacoParaformer)")
    module, attr = target.split(":")
    factory: Any = importlib.import_module(module)
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory
