"""Shared fixtures: the tiny models, the real-data folder, and a small archive built per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("VADPACK_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory) -> None:
    """The user cache folder (core.usercache) of every test and of the CLIs they start: a temporary one."""
    os.environ["VADPACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/real, or a skip that says why (it is not shipped with vadpack)."""
    if not (REAL_DATA / "labels.json").is_file():
        pytest.skip(f"real recordings not found at {REAL_DATA} (set VADPACK_REAL_DATA to the folder "
                    "holding labels.json to run this test)")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Paraformer folder, built once per test session."""
    from vadpack.asr.tiny import write_tiny_model

    return Path(write_tiny_model(tmp_path_factory.mktemp("models") / "tiny", size="tiny", seed=0))


@pytest.fixture(scope="session")
def tiny_sensevoice(tmp_path_factory) -> Path:
    """A tiny random SenseVoice-Small folder, built once per test session."""
    from vadpack.asr.tiny_sensevoice import write_tiny_sensevoice

    return Path(write_tiny_sensevoice(tmp_path_factory.mktemp("models") / "tiny-sensevoice", size="tiny", seed=0))


@pytest.fixture()
def small_archive(tmp_path) -> Path:
    """Three bundled example recordings, one all-silence wav and one text file named .mp3."""
    return write_small_archive(tmp_path / "archive")


def write_small_archive(root: Path) -> Path:
    """``small_archive``'s files, written into ``root``."""
    (root / "sub").mkdir(parents=True)
    for name in ("en_pyannote_sample.wav", "jfk.flac", "funasr_asr_example_zh.mp3"):
        shutil.copy(REPO / "examples" / name, root / name)
    sf.write(root / "sub" / "silence.wav", np.zeros(16000 * 3, dtype=np.int16), 16000, subtype="PCM_16")
    (root / "sub" / "notes.mp3").write_text("this is a text file, not audio\n")
    return root


def write_config(tmp_path: Path, inputs: list[str], model: Path, **sections) -> Path:
    """A demo-like config in tmp_path; ``sections`` override whole config sections."""
    import yaml

    cfg = {
        "inputs": inputs,
        "work_dir": str(tmp_path / "work"),
        "vad": {"workers": 1},
        "packer": {"budget_s": 60, "max_items": 16},
        "asr": {"model": str(model), "device": "cpu", "threads": 1, "feature_workers": 0,
                "batches_per_part": 2},
        "stitch": {"formats": ["srt", "json"]},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
