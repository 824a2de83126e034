"""Loading: clear errors for broken model folders, device resolution, the wrapper, the process cache."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from asr.config import AsrConfig
from asr.model import check_model_folder, load_model, resolve_device
from asr.paraformer import PadInvariantModel, zero_past_lengths


def _copy(tiny_model: Path, tmp_path: Path, drop: str | None = None) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    if drop:
        (folder / drop).unlink()
    return folder


def test_missing_am_mvn_is_a_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path, drop="am.mvn")
    with pytest.raises(FileNotFoundError, match=r"lacks am.mvn.*CMVN"):
        load_model(AsrConfig(model=str(folder), device="cpu"))


@pytest.mark.parametrize("name", ["model.pt", "tokens.json", "config.yaml"])
def test_missing_file_is_named(tiny_model: Path, tmp_path: Path, name: str) -> None:
    folder = _copy(tiny_model, tmp_path, drop=name)
    with pytest.raises(FileNotFoundError, match=f"lacks {re.escape(name)}"):
        check_model_folder(folder)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tiny-model"):
        load_model(AsrConfig(model=str(tmp_path / "nowhere"), device="cpu"))


def test_weights_that_do_not_match_the_config(tiny_model: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path)
    state = torch.load(folder / "model.pt", weights_only=True)
    state.pop(next(k for k in state if k.startswith("predictor.")))
    torch.save(state, folder / "model.pt")
    with pytest.raises(ValueError, match="1 weights missing"):
        load_model(AsrConfig(model=str(folder), device="cpu"))


def test_hotwords_need_seaco(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match=r"SeACo-Paraformer.*Paraformer"):
        load_model(AsrConfig(model=str(tiny_model), device="cpu", hotwords=("阿里巴巴",)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")


def test_loaded_once_per_process(cpu_cfg: AsrConfig) -> None:
    first = load_model(cpu_cfg)
    second = load_model(replace(cpu_cfg, pad_invariant=False, batches_per_part=7))
    assert second.funasr_model is first.funasr_model
    assert isinstance(first.net, PadInvariantModel) and second.net is second.funasr_model
    assert first.frontend_info.feature_dim == 560 and first.frontend_info.lfr_frame_ms == 60
    assert first.model_class == "Paraformer"


def test_zero_past_lengths() -> None:
    x = torch.ones(2, 4, 3)
    out = zero_past_lengths(x, torch.tensor([4, 1]))
    assert out[0].eq(1).all() and out[1, :1].eq(1).all() and out[1, 1:].eq(0).all()
    assert x.eq(1).all()  # the input is left alone
