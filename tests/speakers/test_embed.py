"""Embedding backends on real components: Resemblyzer's trained encoder and FunASR's CAM++ class."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from vadpack.core.cache import pcm_path
from vadpack.speakers.embed import embed_batch, featurize
from vadpack.speakers.types import FeatureBatch, Window

from tests.support.audio import iter_decode_16k

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def resemblyzer() -> object:
    pytest.importorskip("librosa")
    from vadpack.speakers.resemblyzer_backend import ResemblyzerEmbedder

    try:
        return ResemblyzerEmbedder(CPU)
    except ImportError as e:
        pytest.skip(f"resemblyzer is not installed (extra 'speakers'): {e}")


@pytest.fixture(scope="module")
def jfk(real_data: Path) -> np.ndarray:
    return np.concatenate(list(iter_decode_16k(str(real_data / "short_refs" / "jfk.flac"))))


def _package_functions() -> tuple:
    """Resemblyzer's own mel function and VoiceEncoder, imported through its package."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its scipy.ndimage.morphology import
        try:
            from resemblyzer import VoiceEncoder
            from resemblyzer.audio import wav_to_mel_spectrogram
        except ImportError as e:  # its webrtcvad import needs pkg_resources from setuptools < 81
            pytest.skip(f"the resemblyzer package itself does not import here: {e}")
    return wav_to_mel_spectrogram, VoiceEncoder


def test_resemblyzer_matches_the_package_exactly(resemblyzer, jfk: np.ndarray) -> None:
    wav_to_mel, voice_encoder = _package_functions()
    reference = voice_encoder(device="cpu", verbose=False)
    for start_s, length_s in ((0.0, 3.0), (4.0, 1.2), (7.5, 0.3)):
        audio = jfk[round(start_s * 16_000): round((start_s + length_s) * 16_000)]
        mel = resemblyzer.features(audio)
        np.testing.assert_array_equal(mel, wav_to_mel(audio))
        with torch.no_grad():
            expected = reference(torch.from_numpy(mel)[None]).numpy()[0]
        np.testing.assert_allclose(resemblyzer.embed([mel])[0], expected, atol=1e-5)


def test_resemblyzer_batch_of_mixed_lengths_equals_each_alone(resemblyzer, jfk: np.ndarray) -> None:
    # Invariant: padding never changes an embedding (the LSTM runs on packed sequences).
    feats = [resemblyzer.features(jfk[s: s + n]) for s, n in ((0, 48_000), (16_000, 20_000), (90_000, 6_000))]
    together = resemblyzer.embed(feats)
    assert together.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for i, f in enumerate(feats):
        np.testing.assert_allclose(together[i], resemblyzer.embed([f])[0], atol=1e-5)


def _cache(tmp_path: Path, audio: np.ndarray, content_id: str = "rec") -> Path:
    (np.clip(audio, -1, 1) * 32767).astype("<i2").tofile(pcm_path(tmp_path, content_id))
    return tmp_path


def test_out_of_memory_halves_down_to_one_window(resemblyzer, jfk: np.ndarray, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _cache(tmp_path, jfk)
    windows = [Window("rec", 0, s, s + 16_000) for s in range(0, 80_000, 16_000)]
    batch = featurize(resemblyzer, cache, windows)
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=2")
    halved = embed_batch(resemblyzer, batch)
    # 5 -> 2 + 3, and 3 -> 1 + 2: two splits, every window embedded, in batch order.
    assert (halved.splits, halved.ok, halved.failed) == (2, tuple(windows), ())
    monkeypatch.delenv("VADPACK_FAULTS")
    np.testing.assert_allclose(halved.embeddings, embed_batch(resemblyzer, batch).embeddings, atol=1e-5)
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=0")
    none = embed_batch(resemblyzer, batch)
    assert none.ok == () and [f.window for f in none.failed] == windows
    assert all("out of memory on its own" in f.error for f in none.failed)


def test_unreadable_windows_are_failures_with_a_reason(resemblyzer, jfk: np.ndarray, tmp_path: Path) -> None:
    cache = _cache(tmp_path, jfk[:32_000])
    windows = [Window("rec", 0, 0, 16_000), Window("rec", 1, 30_000, 40_000), Window("gone", 0, 0, 100)]
    outcome = embed_batch(resemblyzer, featurize(resemblyzer, cache, windows))
    assert outcome.ok == (windows[0],)
    assert [f.window for f in outcome.failed] == windows[1:]
    assert "outside 0..32000" in outcome.failed[0].error
    assert "FileNotFoundError" in outcome.failed[1].error


# ---- campp: FunASR's CAM++ class with random weights (shapes and plumbing only) ----------------


@pytest.fixture(scope="module")
def campp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vadpack.speakers.campp import write_random_campp

    return write_random_campp(tmp_path_factory.mktemp("campp") / "random", seed=0)


@pytest.fixture(scope="module")
def campp(campp_dir: Path) -> object:
    from vadpack.speakers.campp import CamppEmbedder

    return CamppEmbedder(str(campp_dir), CPU)


def test_campp_runs_offline_on_random_weights(campp) -> None:
    model = campp
    rng = np.random.default_rng(0)
    audio = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (48_000, 48_000, 24_000)]
    feats = [model.features(a) for a in audio]
    assert [f.shape for f in feats] == [(298, 80), (298, 80), (148, 80)]
    np.testing.assert_allclose(feats[0].mean(axis=0), 0.0, atol=1e-4)  # FunASR subtracts the mean
    emb = model.embed(feats)
    assert emb.shape == (3, 192) and model.dim == 192 and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    for i, f in enumerate(feats):  # runs of equal length: a batch never pads
        np.testing.assert_allclose(emb[i], model.embed([f])[0], atol=1e-5)


def test_campp_folder_is_deterministic_and_checked(campp_dir: Path, tmp_path: Path) -> None:
    from vadpack.speakers.campp import CamppEmbedder, write_random_campp

    again = write_random_campp(tmp_path / "again", seed=0)
    assert (again / "model.pt").read_bytes() == (campp_dir / "model.pt").read_bytes()
    (tmp_path / "para").mkdir()
    (tmp_path / "para" / "config.yaml").write_text("model: Paraformer\n")
    (tmp_path / "para" / "model.pt").write_bytes((campp_dir / "model.pt").read_bytes())
    with pytest.raises(ValueError, match="needs CAMPPlus"):
        CamppEmbedder(str(tmp_path / "para"), CPU)
    (tmp_path / "para" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="no model.pt"):
        CamppEmbedder(str(tmp_path / "para"), CPU)


def test_campp_too_short_window_is_a_recorded_failure(campp, tmp_path: Path) -> None:
    model = campp
    cache = _cache(tmp_path, np.random.default_rng(1).standard_normal(20_000).astype(np.float32) * 0.1)
    windows = [Window("rec", 0, 0, 16_000), Window("rec", 1, 16_000, 16_200)]
    outcome = embed_batch(model, featurize(model, cache, windows))
    assert outcome.ok == (windows[0],)
    assert "shorter than one 25 ms fbank frame" in outcome.failed[0].error


def test_empty_batch_gives_an_empty_outcome(campp) -> None:
    outcome = embed_batch(campp, FeatureBatch((), ()))
    assert outcome.embeddings.shape == (0, 192) and outcome.ok == ()
