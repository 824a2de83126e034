"""The budget rule, as a pure function of a measured memory cost and the free memory."""

from __future__ import annotations

import pytest
from vadpack.packer.budget import CPU_BUDGET_S, auto_budget_s, resolve_budget_s
from vadpack.packer.config import PackerConfig

GIB = 2**30


def test_budget_uses_the_memory_fraction_of_free_memory():
    # 40 GiB free, 80 % usable, 64 MiB per padded second -> 512 s.
    assert auto_budget_s(64 * 2**20, 40 * GIB, 0.8) == 512.0
    assert auto_budget_s(64 * 2**20, 40 * GIB, 0.5) == 320.0


def test_budget_is_whole_seconds_and_capped():
    assert auto_budget_s(3 * 2**20, GIB, 0.8) == 273.0  # 0.8 * 1024 / 3 = 273.07
    assert auto_budget_s(1.0, 10**12, 0.8) == 1e6


@pytest.mark.parametrize("probe", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_probe_is_rejected(probe):
    with pytest.raises(ValueError, match="memory probe"):
        auto_budget_s(probe, GIB, 0.8)


def test_too_little_memory_says_what_to_do():
    with pytest.raises(ValueError, match="set packer.budget_s to a number"):
        auto_budget_s(GIB, GIB // 2, 0.8)


def test_resolve_budget_numbers_cpu_and_cuda():
    assert resolve_budget_s(PackerConfig(budget_s=90), "cuda") == 90.0  # a number is never measured
    assert resolve_budget_s(PackerConfig(budget_s="auto"), "cpu") == CPU_BUDGET_S
    auto = PackerConfig(budget_s="auto", memory_fraction=0.5)
    assert resolve_budget_s(auto, "cuda", 64 * 2**20, 40 * GIB) == 320.0
    with pytest.raises(ValueError, match="needs the measured memory"):
        resolve_budget_s(auto, "cuda")
