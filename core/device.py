"""Devices from a config's ``device`` key, shared by the stages that run a model (asr, speakers).

Torch is imported only to resolve a device, so a config section can check its key's form (torch-free).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def check_device_spec(key: str, spec: object) -> None:
    """``spec`` has the form of a device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether this machine
    has it is :func:`device_problem`'s question).

    Raises:
        ValueError: naming ``key`` and the forms allowed.
    """
    if not (spec in ("auto", "cpu", "cuda") or (isinstance(spec, str) and spec.startswith("cuda:"))):
        raise ValueError(f"{key} = {spec!r} is not allowed; choose auto, cpu, cuda or cuda:N")


def device_problem(spec: str, key: str) -> str | None:
    """None when this machine has the device ``spec`` names (``auto`` and ``cpu`` always), else one line
    that names ``key`` and what to do."""
    if spec in ("auto", "cpu"):
        return None
    try:
        resolve_device(spec, key)
    except ValueError as e:
        return str(e)
    return None


# Device files through which torch reaches a GPU on Linux: NVIDIA's driver, WSL2's GPU bridge, AMD's
# ROCm (torch.cuda on ROCm builds) and NVIDIA Jetson's.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd", "/dev/nvhost-ctrl", "/dev/nvmap")


def no_gpu_here() -> bool:
    """True when this machine surely has no device torch could reach as CUDA, known without importing
    torch (seconds of CPU): ``CUDA_VISIBLE_DEVICES`` hides them all, or Linux without any of the device
    files a GPU driver makes, or macOS. False means "ask torch" (the answer may still be no)."""
    import os
    import sys

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return True
    if sys.platform == "darwin":
        return True
    return sys.platform.startswith("linux") and not any(os.path.exists(f) for f in GPU_DEVICE_FILES)


def resolve_device(spec: str, key: str) -> torch.device:
    """The torch device that ``spec`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) names.

    Args:
        spec: the config value.
        key: the config key it came from (``asr.device``), named in error messages.

    Raises:
        ValueError: CUDA is asked for but not available, or the index is out of range.
    """
    import torch

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
