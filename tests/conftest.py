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

# Two lanes. `make test` runs `pytest -m "not slow"`: the unit tests and a few whole-pipeline runs,
# in under 4 minutes on 2 cores. `make test-all` (CI) runs everything. A test is in the full lane only
# when it is marked slow: in its own file, or here, for what the fast lane already covers in kind.
# The fast lane keeps a run and its reruns (tests/pipeline/test_run.py), the Python API (test_api.py),
# a kill -9 and its resume (test_crash_resume.py) and a Ctrl-C (tests/pipeline/test_interrupt.py).
FULL_LANE = (
    "tests/test_ray_engine.py",  # starts a Ray cluster
    "tests/test_reliability.py",  # a three-hour file and a corpus of bad inputs
    "tests/test_faults.py",  # two whole runs per injected fault
    "tests/test_readme.py",  # whole runs with speakers on
    "tests/pipeline/test_speakers.py",  # whole runs with speakers on
    "tests/pipeline/test_sensevoice_run.py",  # whole SenseVoice runs (tests/asr tests the family itself)
    "tests/pipeline/test_partition_switch.py",  # three whole runs
    "tests/asr/test_variants.py",  # BiCifParaformer and SeacoParaformer
    "tests/asr/test_infer.py::test_stock_paraformer_is_not_padding_invariant",  # FunASR's own model, padded
    "tests/asr/test_stage.py::test_feature_worker_process_failure_is_survived",  # a forkserver and its workers
    "tests/asr/test_sensevoice.py::test_stage_rows_do_not_depend_on_the_packing",  # the stage, packed four ways
    "tests/asr/test_sensevoice.py::test_cli_writes_the_same_bytes_for_the_same_seed",  # two models built
    "tests/test_api.py::test_api_logs_in_its_own_format_from_the_first_line",  # two whole runs in fresh Pythons
    "tests/test_api.py::test_resolved_config_names_absolute_paths_and_status_reads_it_from_anywhere",  # a whole run
    "tests/test_typing.py",  # mypy --strict over the public API (also `make typecheck`)
    "tests/stitcher/test_incremental_stitch.py::test_each_change_rewrites_only_its_buckets_and_equals_a_stitch_from_nothing",
)
# Parametrised tests run with these model variants in the full lane only; the fast lane decodes with
# Paraformer and SenseVoice.
FULL_LANE_PARAMS = ("[BiCifParaformer", "[SeacoParaformer")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(FULL_LANE) or any(p in item.nodeid for p in FULL_LANE_PARAMS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory) -> None:
    """The user cache folder (core.usercache) of every test and of the CLIs they start: a temporary one."""
    os.environ["VADPACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(scope="session", autouse=True)
def _no_default_campp(tmp_path_factory) -> None:
    """``speakers.backend: auto`` never picks up a CAM++ that ``make speaker-models`` downloaded: a test
    runs the backend it names (tests of the trained CAM++ give its folder explicitly, see TRAINED_CAMPP)."""
    os.environ["VADPACK_CAMPP_MODEL"] = str(tmp_path_factory.mktemp("no-campplus") / "campplus")


# Where `make speaker-models` puts the trained CAM++ (tests that need it skip when it is absent).
TRAINED_CAMPP = REPO / "runs" / "models" / "campplus"


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
    from vadpack.testkit.tiny import write_tiny_model

    return Path(write_tiny_model(tmp_path_factory.mktemp("models") / "tiny", size="tiny", seed=0))


@pytest.fixture(scope="session")
def tiny_sensevoice(tmp_path_factory) -> Path:
    """A tiny random SenseVoice-Small folder, built once per test session."""
    from vadpack.testkit.tiny_sensevoice import write_tiny_sensevoice

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


@pytest.fixture(scope="session", autouse=True)
def _no_default_segmentation(tmp_path_factory) -> None:
    """``speakers.regions: auto`` never picks up the segmentation-3.0 weights of ``make speaker-models``:
    it resolves to ``vad`` unless a test points ``VADPACK_SEGMENTATION_MODEL`` at them."""
    os.environ["VADPACK_SEGMENTATION_MODEL"] = str(tmp_path_factory.mktemp("no-segmentation") / "segmentation-3.0")
