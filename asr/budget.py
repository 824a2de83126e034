"""``packer.budget_s: auto``: measuring the loaded model's GPU memory per padded second.

The packer owns the arithmetic (``packer.budget.auto_budget_s``); this side owns the model and the
device, so it provides the probe and the free memory, as that function's docstring asks.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from asr.config import AsrConfig
from asr.infer import decode_features
from asr.model import load_model, resolve_device
from asr.types import LoadedModel

log = logging.getLogger("vadpack.asr")

# On the CPU memory is rarely the limit but padding is: a batch gains little past a few items
# (random Paraformer-large, 2 cores: 8 equal items decode 1.9x faster batched than alone at 3 s,
# 1.4x at 10 s, 1.1x at 25 s) while every padded frame costs in full. Small, homogeneous batches
# win: a 30-minute archive decoded in 81 s at 60 padded seconds, 86 s at 120 and 101 s at 300.
CPU_BUDGET_S = 60.0
PROBE_ITEMS = 4
PROBE_ITEM_S = 30.0  # the longest segment the vad stage cuts: the highest cost per padded second


def auto_budget_for(asr_cfg: AsrConfig, packer_cfg) -> float:
    """The padded-seconds budget for the model of ``asr_cfg`` on its device.

    Args:
        asr_cfg: the asr config (model, device, dtype).
        packer_cfg: the packer config (``memory_fraction``).

    Returns:
        ``CPU_BUDGET_S`` on the CPU; on CUDA what ``packer.budget.auto_budget_s`` makes of the probe.
    """
    from packer.budget import auto_budget_s

    if resolve_device(asr_cfg.device).type != "cuda":
        log.info("packer.budget_s = auto: no CUDA device, using %.0f padded seconds", CPU_BUDGET_S)
        return CPU_BUDGET_S
    lm = load_model(asr_cfg)
    torch.cuda.empty_cache()
    free_bytes = torch.cuda.mem_get_info(lm.device)[0]
    budget = auto_budget_s(lambda: probe_bytes_per_padded_s(lm), free_bytes, packer_cfg)
    log.info("packer.budget_s = auto: %.0f padded seconds (%.0f MiB free)", budget, free_bytes / 2**20)
    return budget


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
