"""The CAM++ backend: its features against Kaldi's fbank computed by hand, the missing-weights
mistake, segment embedding (``speakers.embedding: segment``) against the per-window network, and
(when ``make speaker-models`` has run) the trained model's DER on a human-labelled file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vadpack.speakers.campp import campp_fbank, window_frames

from tests.conftest import TRAINED_CAMPP

SR = 16_000


def kaldi_fbank_by_hand(x: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Kaldi's fbank written out in numpy (float64): 25 ms frames every 10 ms (snip_edges), DC removed,
    pre-emphasis 0.97, povey window, 512-point power spectrum, triangular mel filters 20-8000 Hz on
    Kaldi's mel scale, log floored at float32's epsilon; then minus the mean over frames."""
    flen, shift, nfft = 400, 160, 512
    n = 1 + (len(x) - flen) // shift
    frames = np.stack([x[i * shift: i * shift + flen] for i in range(n)]).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(flen) / (flen - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames * window, nfft)) ** 2

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1 + np.asarray(f) / 700.0)

    edges = np.linspace(mel(20.0), mel(SR / 2), n_mels + 2)
    bin_mel = mel(np.arange(nfft // 2) * SR / nfft)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    banks = np.maximum(0, np.minimum((bin_mel - left) / (centre - left), (right - bin_mel) / (right - centre)))
    logs = np.log(np.maximum(power[:, : nfft // 2] @ banks.T, np.finfo(np.float32).eps))
    return logs - logs.mean(axis=0, keepdims=True)


def tone(seconds: float = 1.0) -> np.ndarray:
    """Two tones, an amplitude-modulated third, and white noise."""
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.02 * np.random.default_rng(0).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.sin(2 * np.pi * 3000 * t)
            + 0.05 * np.sin(2 * np.pi * 7 * t) * np.sin(2 * np.pi * 1200 * t) + noise).astype(np.float32)


def test_fbank_is_kaldis_computed_by_hand() -> None:
    x = tone()
    feats = campp_fbank(x)
    assert feats.shape == (98, 80) and feats.dtype == np.float32  # 1 + (16000 - 400) // 160 frames
    np.testing.assert_allclose(feats, kaldi_fbank_by_hand(x), atol=2e-3)


def test_fbank_is_mean_normalised_and_needs_one_frame() -> None:
    x = tone(0.5)
    feats = campp_fbank(x)
    assert feats.shape == (48, 80)
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-4)
    assert campp_fbank(x[:400]).shape == (1, 80)
    with pytest.raises(ValueError, match="shorter than one 25 ms fbank frame"):
        campp_fbank(x[:399])


def test_missing_default_folder_names_the_make_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from vadpack.speakers.campp import load_campp
    from vadpack.speakers.config import CAMPP_DIR_ENV, SpeakersConfig

    monkeypatch.setenv(CAMPP_DIR_ENV, str(tmp_path / "campplus"))
    cfg = SpeakersConfig(backend="campp")
    with pytest.raises(FileNotFoundError, match="make speaker-models"):
        load_campp(cfg.model_name, torch.device("cpu"))


def test_explicit_campp_without_its_weights_exits_2_with_one_line(tmp_path: Path, tiny_model: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    import soundfile as sf
    import yaml
    from vadpack.pipeline.cli import main
    from vadpack.speakers.config import CAMPP_DIR_ENV

    monkeypatch.setenv(CAMPP_DIR_ENV, str(tmp_path / "campplus"))
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(16000, dtype=np.int16), 16000)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "inputs": ["audio"], "work_dir": "work", "speakers": {"enabled": True, "backend": "campp"},
        "asr": {"model": str(tiny_model), "device": "cpu", "threads": 1}}))
    monkeypatch.chdir(tmp_path)
    code = main(["run", "config.yaml", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "speakers.model" in err[0] and "make speaker-models" in err[0]
    assert not list(tmp_path.rglob("recordings.parquet"))


# ---- the trained CAM++ (make speaker-models), scored against the human RTTM ----------------------


@pytest.fixture(scope="module")
def trained_campp() -> Path:
    if not (TRAINED_CAMPP / "model.pt").is_file():
        pytest.skip(f"the trained CAM++ is not at {TRAINED_CAMPP}; run `make speaker-models` to test it")
    return TRAINED_CAMPP


def test_trained_campp_on_the_pyannote_sample_with_human_regions(trained_campp: Path, real_data: Path,
                                                                  tmp_path: Path) -> None:
    pytest.importorskip("pyannote.metrics")
    from vadpack.core.cache import pcm_path
    from vadpack.speakers.config import SpeakersConfig
    from vadpack.speakers.stage import run_speakers

    from bench.speakers import FILES, der, read_rttm, segments_table, union_samples
    from tests.support.audio import decode_int16

    audio, rttm, _ = FILES["sample"]
    pcm = decode_int16(str(real_data / audio))
    pcm.astype("<i2").tofile(pcm_path(tmp_path, "sample"))
    reference = read_rttm(real_data / rttm, "sample")
    cfg = SpeakersConfig(enabled=True, backend="campp", model=str(trained_campp), device="cpu")
    result = run_speakers(segments_table({"sample": union_samples(reference)}), tmp_path, cfg, progress=False)
    error, total = der(reference, result.spans, "sample", [(0.0, len(pcm) / SR)])
    assert result.summary["speakers_per_recording"] == {"sample": 2}  # the RTTM's two speakers
    assert result.summary["backend"] == f"campp:{trained_campp}"
    assert error / total < 0.12


def test_window_frames_by_hand() -> None:
    # 1.5 s windows (24000 samples) are 148 fbank frames of 400 samples every 160; a window starts at
    # the frame nearest its first sample, and one that would run past the segment is moved back
    start = 1000
    windows = [(start, start + 24000), (start + 12000, start + 36000), (start + 12090, start + 36090),
               (start + 40000, start + 64000)]
    assert window_frames(start, 398, windows) == [(0, 148), (75, 223), (76, 224), (250, 398)]
    assert window_frames(start, 240, windows[3:]) == [(92, 240)]  # 250 would end past frame 240
    assert window_frames(0, 5, [(0, 1040)]) == [(0, 5)]  # a short segment's one window: all its frames


def test_a_segment_of_one_window_embeds_as_the_window_does(tmp_path: Path) -> None:
    """The segment path (layers once, statistics per window, dense) is the network's own forward when the
    segment is the window: same features, same pooling."""
    import torch
    from vadpack.speakers.campp import CamppEmbedder, write_random_campp

    embedder = CamppEmbedder(str(write_random_campp(tmp_path / "campp", seed=3)), torch.device("cpu"))
    feats = campp_fbank(tone(1.5))
    whole = embedder.embed([feats])
    np.testing.assert_allclose(embedder.embed_segment(feats, [(0, len(feats))]), whole, atol=1e-5)
    # a window inside a longer segment pools only its own output frames
    longer = campp_fbank(tone(4.0))
    rows = embedder.embed_segment(longer, [(0, 148), (100, 248), (0, len(longer))])
    assert rows.shape == (3, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(rows[0], rows[1])


def test_trained_campp_segment_embedding_on_the_pyannote_sample(trained_campp: Path, real_data: Path,
                                                               tmp_path: Path) -> None:
    """``speakers.embedding: segment`` on the human speech regions of the pyannote sample: its two
    speakers, with a DER inside the bound the per-window embedding meets."""
    pytest.importorskip("pyannote.metrics")
    from vadpack.core.cache import pcm_path
    from vadpack.speakers.config import SpeakersConfig
    from vadpack.speakers.stage import run_speakers

    from bench.speakers import FILES, der, read_rttm, segments_table, union_samples
    from tests.support.audio import decode_int16

    audio, rttm, _ = FILES["sample"]
    pcm = decode_int16(str(real_data / audio))
    pcm.astype("<i2").tofile(pcm_path(tmp_path, "sample"))
    reference = read_rttm(real_data / rttm, "sample")
    cfg = SpeakersConfig(enabled=True, backend="campp", model=str(trained_campp), device="cpu", regions="vad",
                         embedding="segment")
    result = run_speakers(segments_table({"sample": union_samples(reference)}), tmp_path, cfg, progress=False)
    error, total = der(reference, result.spans, "sample", [(0.0, len(pcm) / SR)])
    assert result.summary["speakers_per_recording"] == {"sample": 2}
    assert result.failures.num_rows == 0
    assert error / total < 0.12
