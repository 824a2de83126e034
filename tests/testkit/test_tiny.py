"""The random model folders: layout, determinism, and loading with FunASR's own AutoModel."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import yaml
from vadpack.testkit.tiny import model_config, token_list, write_tiny_model


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_has_what_funasr_needs(tiny_model: Path) -> None:
    config = yaml.safe_load((tiny_model / "config.yaml").read_text())
    for key in ("model", "model_conf", "encoder", "encoder_conf", "decoder", "decoder_conf", "predictor",
                "predictor_conf", "frontend", "frontend_conf", "tokenizer", "tokenizer_conf"):
        assert key in config, key
    assert config["model"] == "Paraformer" and config["specaug"] is None
    assert config["frontend_conf"]["dither"] == 0.0 and config["frontend_conf"]["cmvn_file"] == "am.mvn"
    tokens = json.loads((tiny_model / "tokens.json").read_text(encoding="utf-8"))
    assert tokens[:3] == ["<blank>", "<s>", "</s>"] and tokens[-1] == "<unk>"
    # Invariant: both scripts and continuation pieces, so the stitcher sees real cases.
    assert any("\u4e00" <= t <= "\u9fff" for t in tokens)
    assert any(t.endswith("@@") for t in tokens) and any(t.isascii() and t.isalpha() for t in tokens)
    mvn = (tiny_model / "am.mvn").read_text()
    assert "<AddShift> 560 560" in mvn and "<Rescale> 560 560" in mvn


def test_same_seed_same_bytes(tmp_path: Path, tiny_model: Path) -> None:
    again = write_tiny_model(tmp_path / "again", seed=0)
    for name in ("model.pt", "tokens.json", "am.mvn", "config.yaml"):
        assert _digest(again / name) == _digest(tiny_model / name), name
    other = write_tiny_model(tmp_path / "other", seed=1)
    assert _digest(other / "model.pt") != _digest(tiny_model / "model.pt")


def test_large_config_is_paraformer_large() -> None:
    config = model_config("large")
    enc, dec, pred = config["encoder_conf"], config["decoder_conf"], config["predictor_conf"]
    assert (enc["output_size"], enc["attention_heads"], enc["linear_units"]) == (512, 4, 2048)
    assert enc["num_blocks"] == 50
    assert (enc["kernel_size"], enc["sanm_shfit"]) == (11, 0)
    assert (dec["attention_heads"], dec["linear_units"], dec["num_blocks"]) == (4, 2048, 16)
    assert (pred["idim"], pred["l_order"], pred["r_order"], pred["threshold"], pred["tail_threshold"]) == \
        (512, 1, 1, 1.0, 0.45)
    tokens = token_list(8404)
    assert len(tokens) == len(set(tokens)) == 8404


def test_funasr_automodel_loads_it(tiny_model: Path) -> None:
    from funasr import AutoModel

    am = AutoModel(model=str(tiny_model), disable_update=True, device="cpu", ncpu=1, disable_pbar=True)
    assert type(am.model).__name__ == "Paraformer"
    assert am.kwargs["frontend"].cmvn is not None
    saved = torch.load(tiny_model / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in am.model.state_dict().items())
