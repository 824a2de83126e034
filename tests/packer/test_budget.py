"""budget_s: auto, as a pure function of a measured memory cost and the free memory."""

from __future__ import annotations

import pytest

from packer.budget import auto_budget_s
from packer.config import PackerConfig

GIB = 2**30


def test_budget_uses_the_memory_fraction_of_free_memory():
    # 40 GiB free, 80 % usable, 64 MiB per padded second -> 512 s.
    assert auto_budget_s(lambda: 64 * 2**20, 40 * GIB, PackerConfig(budget_s="auto")) == 512.0
    assert auto_budget_s(lambda: 64 * 2**20, 40 * GIB, PackerConfig(budget_s="auto", memory_fraction=0.5)) == 320.0


def test_budget_is_whole_seconds_and_capped():
    assert auto_budget_s(lambda: 3 * 2**20, GIB, PackerConfig()) == 273.0  # 0.8 * 1024 / 3 = 273.07
    assert auto_budget_s(lambda: 1.0, 10**12, PackerConfig()) == 1e6


@pytest.mark.parametrize("probe", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_probe_is_rejected(probe):
    with pytest.raises(ValueError, match="memory probe"):
        auto_budget_s(lambda: probe, GIB, PackerConfig())


def test_too_little_memory_says_what_to_do():
    with pytest.raises(ValueError, match="set packer.budget_s to a number"):
        auto_budget_s(lambda: GIB, GIB // 2, PackerConfig())
