"""Torch devices from a config's ``device`` key, shared by the stages that run a model (asr, speakers)."""

from __future__ import annotations

import torch


def resolve_device(spec: str, key: str) -> torch.device:
    """The torch device that ``spec`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) names.

    Args:
        spec: the config value.
        key: the config key it came from (``asr.device``), named in error messages.

    Raises:
        ValueError: CUDA is asked for but not available, or the index is out of range.
    """
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"{key} = {spec!r} but torch sees no CUDA device; set {key} to auto or cpu")
    index = 0 if spec == "cuda" else int(spec.split(":", 1)[1])
    if not 0 <= index < torch.cuda.device_count():
        raise ValueError(f"{key} = {spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                         f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return torch.device("cuda", index)
