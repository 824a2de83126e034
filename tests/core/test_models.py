"""The one model-spec rule (a local folder or a hub id) and the one device-spec check, on hand-made cases."""

from __future__ import annotations

import pytest
from vadpack.core.device import check_device_spec, device_problem
from vadpack.core.models import is_local_model, model_spec_problem


def test_a_path_or_something_that_exists_is_local_anything_else_a_hub_id(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "tiny").mkdir(parents=True)
    for spec in ("/nowhere", "./nowhere", "../nowhere", "~/nowhere"):
        assert is_local_model(spec), spec
    assert is_local_model("conf/tiny")  # exists here
    assert not is_local_model("tiny")
    assert is_local_model("tiny", base_dir=tmp_path / "conf")  # exists beside the config
    for spec in ("paraformer-zh", "iic/SenseVoiceSmall"):
        assert not is_local_model(spec), spec


def test_model_spec_problems_name_the_key_and_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    assert model_spec_problem("asr.model", str(tmp_path / "models" / "tiny")) is None
    assert model_spec_problem("asr.model", "iic/SenseVoiceSmall") is None  # namespace/name: not looked up
    # A namespace that is a folder here: a path to a folder that is not there, not a hub id.
    assert model_spec_problem("asr.model", "models/gone") == \
        "asr.model = 'models/gone': no such model folder; fix the path, or give a FunASR hub id"
    assert model_spec_problem("stitch.punc_model", "a b") == (
        "stitch.punc_model = 'a b': no such model folder; fix the path, or give a FunASR hub id "
        "(a hub id is a name such as paraformer-zh, or namespace/name)")


def test_device_specs() -> None:
    for spec in ("auto", "cpu", "cuda", "cuda:1"):
        check_device_spec("asr.device", spec)
    with pytest.raises(ValueError, match=r"^speakers.device = 'gpu' is not allowed; choose auto, cpu, cuda or cuda:N$"):
        check_device_spec("speakers.device", "gpu")
    assert device_problem("cpu", "asr.device") is None and device_problem("auto", "asr.device") is None
