"""``packer.budget_s: auto`` on a machine without CUDA falls back to a fixed budget."""

from __future__ import annotations

import pytest
import torch

from asr.budget import CPU_BUDGET_S, auto_budget_for
from asr.config import AsrConfig
from packer.config import PackerConfig


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fallback")
def test_cpu_budget_without_loading_a_model() -> None:
    # The model name is not even looked at: nothing is loaded on the CPU path.
    assert auto_budget_for(AsrConfig(model="/nonexistent", device="auto"), PackerConfig()) == CPU_BUDGET_S
