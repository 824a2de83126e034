"""Smoke tests of the benchmarks against FunASR: each runs end to end on a tiny model and a tiny archive,
and its last line of output is the JSON object ../shared/BENCH.md promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

E2E_KEYS = {
    "audio_hours", "vadpack_xrt", "funasr_xrt", "ceiling_xrt", "ratio_vs_funasr", "ratio_vs_ceiling",
    "vadpack_padding_efficiency", "funasr_padding_efficiency", "transcripts_identical", "mismatched_segments",
    "peak_rss_mb", "peak_gpu_mb", "device", "date",
}
ASR_KEYS = {"model_busy", "vadpack_xrt", "funasr_xrt", "ratio_vs_funasr", "identical_to_funasr", "device", "date"}
PRECISION_KEYS = {"bf16_tokens_equal_fp32", "bf16_batch_invariant", "fp16_tokens_equal_fp32", "fp16_batch_invariant",
                  "bf16_token_agreement", "fp16_token_agreement", "max_timestamp_drift_ms", "device", "date"}
RSS_KEYS = {"asr_peak_rss_mb", "asr_rss_after_load_mb", "asr_rss_beyond_model_mb", "rss_audio_h", "rss_segments"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vadpack.testkit.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("bench-model") / "tiny", size="tiny", seed=0)


def run_bench(script: str, *args: str) -> dict:
    """Run ``bench/<script>`` and parse the JSON object on its last line of output."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_e2e_runs_all_three_systems_and_transcripts_match(tmp_path: Path, tiny_model: Path) -> None:
    out = run_bench("e2e.py", "--size", "tiny", "--model-dir", str(tiny_model), "--device", "cpu",
                    "--hours", "0.01", "--file-minutes", "0.1", "0.25", "--work", str(tmp_path))
    assert E2E_KEYS <= out.keys(), f"missing keys: {E2E_KEYS - out.keys()}"
    # Invariant: FunASR decodes exactly vadpack's segments from exactly vadpack's samples, so with the
    # padding-invariance wrapper every segment has the same tokens on both sides.
    assert out["transcripts_identical"] is True
    assert out["mismatched_segments"] == 0 and out["segments"] > 0
    assert set(out["formats"]) == {"wav", "flac", "ogg", "mp3"}
    assert out["failed_inputs"] == 0 and out["failed_segments"] == 0
    assert 0.009 < out["audio_hours"] < 0.011
    assert min(out["vadpack_xrt"], out["funasr_xrt"], out["ceiling_xrt"]) > 0
    assert 0 < out["vadpack_padding_efficiency"] <= 1 and out["funasr_padding_efficiency"] == 1.0  # CPU: 1 per call
    assert out["funasr_cpu_batching"] is False and out["device"].startswith("cpu x")
    assert out["mkl_cbwr"] == "AUTO,STRICT" and out["vadpack_batch_invariant"] is True
    # The same archive's batches: every segment decodes bit-identically in its batch and alone.
    inv = run_bench("batch_invariance.py", "--work-dir", str(tmp_path / "vadpack"), "--batches", "0")
    assert {"segments", "bit_identical_in_any_batch", "vadpack_speedup", "device", "date"} <= inv.keys()
    assert inv["segments"] == out["segments"] and inv["bit_identical_in_any_batch"] is True
    for way in ("vadpack_mkl_default", "vadpack_mkl_strict", "vadpack_mkl_avx2"):
        assert inv[way]["differ"] == 0 and inv[way]["row_probe"].startswith("measured on this CPU"), way
    assert inv["vadpack_mkl_default"]["mkl_cbwr"] is None  # MKL's default mode: nothing pinned it
    assert inv["vadpack_mkl_avx2"]["mkl_instructions"] == "AVX2"


@pytest.mark.slow
def test_asr_bench_matches_funasr_and_measures_rss(tmp_path: Path) -> None:
    out = run_bench("asr.py", "--size", "tiny", "--device", "cpu", "--audio-s", "20", "--recordings", "2",
                    "--rss-hours", "0.02", "--work", str(tmp_path))
    assert (ASR_KEYS | RSS_KEYS) <= out.keys(), f"missing keys: {(ASR_KEYS | RSS_KEYS) - out.keys()}"
    assert out["identical_to_funasr"] == 1.0
    assert out["asr_peak_rss_mb"] >= out["asr_rss_after_load_mb"] > 0


@pytest.mark.slow
def test_sensevoice_benches_match_funasr(tmp_path: Path, tiny_sensevoice: Path) -> None:
    # --family sensevoice: the same JSON keys, and FunASR's own SenseVoice decoding (tags taken out)
    # gives every segment the tokens vadpack gives it.
    out = run_bench("asr.py", "--family", "sensevoice", "--size", "tiny", "--device", "cpu", "--audio-s", "20",
                    "--recordings", "2", "--work", str(tmp_path / "asr"))
    assert ASR_KEYS <= out.keys() and out["identical_to_funasr"] == 1.0
    assert out["model"] == "random sensevoice-tiny" and out["segments"] > 0
    out = run_bench("e2e.py", "--family", "sensevoice", "--size", "tiny", "--model-dir", str(tiny_sensevoice),
                    "--device", "cpu", "--hours", "0.01", "--file-minutes", "0.1", "0.25", "--work", str(tmp_path))
    assert E2E_KEYS <= out.keys(), f"missing keys: {E2E_KEYS - out.keys()}"
    assert out["transcripts_identical"] is True and out["mismatched_segments"] == 0 and out["segments"] > 0
    assert out["model"] == "random sensevoice-tiny" and min(out["vadpack_xrt"], out["ceiling_xrt"]) > 0


INCREMENTAL_KEYS = {
    "new_2pct_decoded_fraction", "new_2pct_wall_fraction", "modified_decoded_fraction", "renamed_decoded_fraction",
    "budget_change_decoded_fraction", "deleted_tables_equal", "all_tables_equal_from_scratch", "device", "date",
}


@pytest.mark.slow
def test_incremental_bench_reports_every_change(tmp_path: Path) -> None:
    out = run_bench("incremental.py", "--size", "tiny", "--recordings", "6", "--work", str(tmp_path))
    assert INCREMENTAL_KEYS <= out.keys(), f"missing keys: {INCREMENTAL_KEYS - out.keys()}"
    assert out["all_tables_equal_from_scratch"] is True and out["deleted_tables_equal"] is True
    # Invariant: a renamed folder and a new budget decode nothing; new and modified files only themselves.
    assert out["renamed_decoded_fraction"] == out["budget_change_decoded_fraction"] == 0.0
    assert 0 < out["new_2pct_decoded_fraction"] < 1 and 0 < out["modified_decoded_fraction"] < 1


@pytest.mark.slow
def test_precision_bench_compares_three_dtypes_on_real_speech(tmp_path: Path, real_data: Path) -> None:
    out = run_bench("precision.py", "--size", "tiny", "--segments", "4", "--work", str(tmp_path))
    assert PRECISION_KEYS <= out.keys(), f"missing keys: {PRECISION_KEYS - out.keys()}"
    assert out["segments"] == 4 and 8 <= out["audio_s"] <= 32  # 2-8 s each
    # Invariant: float32 gives the same result alone and in any batching.
    assert out["fp32_batch_invariant"] == 1.0
    assert all(0 <= out[k] <= 1 for k in PRECISION_KEYS if k.endswith(("_fp32", "_invariant", "_agreement")))


@pytest.mark.slow
def test_speakers_bench_prints_the_promised_keys() -> None:
    pytest.importorskip("resemblyzer")
    pytest.importorskip("pyannote.metrics")
    from tests.conftest import REAL_DATA

    if not (REAL_DATA / "labels.json").is_file():
        pytest.skip(f"real recordings not found at {REAL_DATA}")
    out = run_bench("speakers.py", "--device", "cpu", "--no-loo")
    keys = {"mean_der", "one_speaker_mean_der", "oracle_vad_mean_der", "speaker_count_mae", "embed_xrt", "device",
            "date", "files"}
    assert keys <= out.keys(), f"missing keys: {keys - out.keys()}"
    assert len(out["files"]) == 6 and all(f["der"] >= 0 for f in out["files"])
    # The stage beats calling everyone one speaker, with the true speech regions.
    assert out["oracle_vad_mean_der"] < out["oracle_one_speaker_mean_der"]
    assert out["device"].startswith("cpu x") and out["embed_xrt"] > 0


@pytest.mark.slow
def test_vad_bench_prints_per_file_quality_and_its_keys(real_data: Path) -> None:
    out = run_bench("vad.py", "--speed-hours", "0.05", "--rss-hours", "0.05", "--meetings", "1", "--workers", "1")
    keys = {"xrt_per_core", "recall", "precision", "min_file_recall", "synthetic_cuts_in_pauses", "device", "date"}
    assert keys <= out.keys(), f"missing keys: {keys - out.keys()}"
    assert 0 < out["min_file_recall"] <= out["recall"] <= 1 and 0 < out["precision"] <= 1
    assert out["xrt_per_core"] > 0


@pytest.mark.slow
def test_pcm_cache_bench_prints_the_cache_and_rerun_figures() -> None:
    out = run_bench("pcm_cache.py", "--minutes", "0.2", "--repeat", "1")
    assert out["cache_mb_per_audio_hour"] == 115.2  # 16 kHz x 2 bytes x 3600 s, exactly
    assert set(out["formats"]) == {"wav", "flac", "mp3"}
    assert all(f["redecode_s_per_hour"] > f["cached_read_s_per_hour"] for f in out["formats"].values())
    rerun = out["rerun_asr"]
    assert rerun["pcm_files_left_with"] == 3 and rerun["pcm_files_left_without"] == 0
    assert {"device", "date", "flac_cache_mb_per_audio_hour"} <= set(out)
