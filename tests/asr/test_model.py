"""Loading: clear errors for broken model folders, device resolution, the wrapper, the process cache."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from vadpack.asr.config import AsrConfig
from vadpack.asr.model import check_model_folder, load_model, resolve_device
from vadpack.asr.paraformer import PadInvariantModel, zero_past_lengths


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


@pytest.mark.parametrize("family", ["paraformer", "sensevoice"])
def test_built_without_random_init_is_the_model_built_with_it(family: str, tiny_model: Path,
                                                               tiny_sensevoice: Path) -> None:
    """Skipping the random initial weights (no_random_init) leaves every weight and buffer as FunASR's
    own build followed by the same model.pt gives, and draws nothing from torch's random generator."""
    from funasr import AutoModel
    from funasr.download.download_model_from_hub import download_model
    from vadpack.asr.model import _folder_stamp, _load_cached, _load_weights, no_random_init

    folder = str(tiny_model if family == "paraformer" else tiny_sensevoice)
    conf = download_model(model=folder, device="cpu", ncpu=1, disable_update=True, disable_log=True,
                          frontend_conf={"dither": 0.0})
    weights = conf.pop("init_param")
    conf.setdefault("model_conf", {})
    reference, _ = AutoModel.build_model(**conf)  # random initial weights drawn, as FunASR builds
    _load_weights(folder, reference, weights)
    init_before = torch.nn.init.kaiming_uniform_
    torch.manual_seed(0)  # FunASR's build_model seeds torch with 0 before it builds anything
    seeded = torch.random.get_rng_state()
    torch.manual_seed(1234)
    with no_random_init():
        AutoModel.build_model(**conf)
    assert torch.equal(torch.random.get_rng_state(), seeded)  # seeded, then not one random number drawn
    assert torch.nn.init.kaiming_uniform_ is init_before  # restored on exit
    ours = _load_cached.__wrapped__(folder, _folder_stamp(folder), "cpu", "float32", 1)[0]
    for kind in ("named_parameters", "named_buffers"):
        theirs, mine = dict(getattr(reference, kind)()), dict(getattr(ours, kind)())
        assert mine.keys() == theirs.keys()
        for name, tensor in theirs.items():
            assert torch.equal(mine[name], tensor), name
