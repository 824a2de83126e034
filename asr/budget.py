"""What ``packer.budget_s: auto`` needs from asr: the loaded model's GPU memory per padded second.

asr measures; the orchestrator decides the budget with the packer's rule
(``packer.budget.resolve_budget_s``).
"""

from __future__ import annotations

import numpy as np
import torch
from vadpack.asr.config import AsrConfig
from vadpack.asr.infer import decode_features
from vadpack.asr.model import load_model
from vadpack.asr.types import LoadedModel, MemoryProbe

PROBE_ITEMS = 4
PROBE_ITEM_S = 30.0  # the longest segment the vad stage cuts: the highest cost per padded second


def measure_memory(cfg: AsrConfig) -> MemoryProbe:
    """Load the model on its CUDA device and measure one maximum-length probe batch.

    Raises:
        ValueError: the configured device is not CUDA (there is nothing to measure on the CPU).
    """
    lm = load_model(cfg)
    if lm.device.type != "cuda":
        raise ValueError(f"asr.device = {cfg.device!r} is not a CUDA device: there is no GPU memory to measure")
    torch.cuda.empty_cache()
    free_bytes = int(torch.cuda.mem_get_info(lm.device)[0])  # before the probe fills the allocator cache
    bytes_per_s = probe_bytes_per_padded_s(lm)
    return MemoryProbe(torch.cuda.get_device_name(lm.device), bytes_per_s, free_bytes)


def probe_bytes_per_padded_s(lm: LoadedModel) -> float:
    """Peak CUDA bytes, above what is allocated before, per padded second of a maximum-length batch."""
    frames = int(PROBE_ITEM_S * 1000 / lm.frontend_info.lfr_frame_ms)
    rng = np.random.default_rng(0)  # noise: the CIF fires, so the decoder runs at full length too
    feats = rng.standard_normal((PROBE_ITEMS, frames, lm.frontend_info.feature_dim)).astype(np.float32)
    torch.cuda.synchronize(lm.device)
    before = torch.cuda.memory_allocated(lm.device)
    torch.cuda.reset_peak_memory_stats(lm.device)
    decode_features(lm, feats, np.full(PROBE_ITEMS, frames), [int(PROBE_ITEM_S * 1000)] * PROBE_ITEMS)
    torch.cuda.synchronize(lm.device)
    peak = torch.cuda.max_memory_allocated(lm.device)
    return (peak - before) / (PROBE_ITEMS * PROBE_ITEM_S)
