"""SpeakersConfig: defaults, and bad values rejected with a message naming the key."""

from __future__ import annotations

import pytest
from vadpack.core.configtools import from_mapping, result_hash
from vadpack.speakers.config import CAMPP_DIR_ENV, SpeakersConfig, default_campp_dir


def test_defaults_are_off_and_valid() -> None:
    cfg = SpeakersConfig()
    assert cfg.enabled is False
    assert (cfg.backend, cfg.clustering, cfg.threads, cfg.device) == ("auto", "auto", 0, "auto")
    assert (cfg.window_samples, cfg.hop_samples) == (48_000, 24_000)
    assert SpeakersConfig(backend="campp").model_name == str(default_campp_dir())


def test_auto_is_campp_with_spectral_clustering_when_its_folder_is_ready(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "campplus"
    monkeypatch.setenv(CAMPP_DIR_ENV, str(folder))
    cfg = SpeakersConfig()
    assert (cfg.resolved_backend, cfg.resolved_clustering, cfg.model_name) == ("resemblyzer", "ahc", "resemblyzer")
    folder.mkdir()
    (folder / "config.yaml").write_text("model: CAMPPlus\n")
    assert SpeakersConfig().resolved_backend == "resemblyzer"  # no model.pt yet: not ready
    (folder / "model.pt").write_bytes(b"")
    cfg = SpeakersConfig()
    assert (cfg.resolved_backend, cfg.resolved_clustering, cfg.model_name) == ("campp", "spectral", str(folder))
    # Explicit values win; a resemblyzer checkpoint given to auto keeps resemblyzer.
    assert SpeakersConfig(backend="resemblyzer").resolved_backend == "resemblyzer"
    assert SpeakersConfig(clustering="ahc").resolved_clustering == "ahc"
    assert SpeakersConfig(backend="resemblyzer", clustering="spectral").resolved_clustering == "spectral"
    assert SpeakersConfig(model=str(tmp_path / "voice.pt")).resolved_backend == "resemblyzer"


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("backend", "pyannote", "'auto', 'resemblyzer', 'campp'"),
    ("clustering", "kmeans", "'auto', 'ahc', 'spectral'"),
    ("pval", 1.5, "speakers.pval"),
    ("hop_s", 4.0, "speakers.hop_s"),
    ("window_s", 0.1, "speakers.window_s"),
    ("smoothing", 4, "must be odd"),
    ("boundary", "pause", "'midpoint', 'quietest'"),
    ("num_speakers", 0, "speakers.num_speakers"),
    ("num_speakers", 2.5, "whole number"),
    ("max_speakers", 0, "speakers.max_speakers"),
    ("device", "gpu", "auto, cpu, cuda or cuda:N"),
    ("threshold", 3.0, "speakers.threshold"),
    ("enabled", "yes", "true or false"),
    ("embedding", "frames", "'window', 'segment'"),
    ("segmentation_hop_s", 12.0, "speakers.segmentation_hop_s"),
])
def test_bad_values_name_the_key_and_what_is_allowed(key: str, value: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        SpeakersConfig(**{key: value})


def test_unknown_yaml_key_is_named() -> None:
    with pytest.raises(ValueError, match="speakers.windows_s"):
        from_mapping(SpeakersConfig, {"windows_s": 2.0}, "speakers")


def test_speed_only_keys_leave_the_result_hash_alone() -> None:
    base = SpeakersConfig(enabled=True)
    fast = SpeakersConfig(enabled=False, device="cpu", batch_windows=8, group_windows=10, threads=2, prefetch=1)
    assert result_hash(fast) == result_hash(base)
    assert result_hash(SpeakersConfig(threshold=1.0)) != result_hash(base)


def test_default_yaml_documents_every_key_with_its_default() -> None:
    import dataclasses

    import yaml

    from tests.conftest import REPO

    section = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())["speakers"]
    fields = {f.name: f.default for f in dataclasses.fields(SpeakersConfig)}
    assert section == fields
