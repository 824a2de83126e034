"""core.audio: any input -> 16 kHz mono, exact in length, streamed, with readable errors."""

from __future__ import annotations

import itertools
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from vadpack.core.audio import AudioError, decode_to_pcm, probe
from vadpack.core.cache import open_pcm
from vadpack.core.resample import PolyphaseResampler

from tests.support.audio import AudioWarning, iter_decode_16k

SR = 16000
# Decoded duration must match the true duration to within 10 ms.
TOLERANCE_S = 0.010


def decode_all(path: Path, block_s: float = 10.0) -> np.ndarray:
    return np.concatenate(list(iter_decode_16k(str(path), block_s)))


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def write_m4a(path: Path, x: np.ndarray, rate: int) -> None:
    """An AAC file in an mp4 container, encoded with PyAV (no ffmpeg binary needed)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


# ---- real recordings ---------------------------------------------------------------------------

REAL_FILES = [
    # (path, note): 8 kHz, 44.1 kHz stereo 24-bit flac, float32 wav, mp3 at 24 and 16 kHz, stereo wav
    "en_voxconverse_aepyx_8k/aepyx_8k.wav",
    "short_refs/jfk.flac",
    "en_ami_excerpts_pyannote/tst00.wav",
    "short_refs/multilingual.mp3",
    "short_refs/funasr_asr_example_zh.mp3",
    "en_mfa_stereo/michaelandsickmichael.wav",
]


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_decode_to_their_duration(real_data: Path, name: str) -> None:
    path = real_data / name
    info = sf.info(str(path))
    true_s = info.frames / info.samplerate
    labels = json.loads((real_data / "labels.json").read_text())
    if name in labels:  # the labels were made from ffprobe: a second, independent reference
        assert abs(labels[name]["duration_s"] - true_s) < TOLERANCE_S
    pcm = decode_all(path)
    assert pcm.dtype == np.float32
    assert abs(len(pcm) / SR - true_s) <= TOLERANCE_S
    assert abs(probe(str(path)).duration_s - true_s) <= TOLERANCE_S


def test_probe_reads_the_header(real_data: Path) -> None:
    info = probe(str(real_data / "short_refs/jfk.flac"))
    assert (info.sample_rate, info.channels, info.codec) == (44100, 2, "flac")
    assert info.duration_s == pytest.approx(11.0)
    assert probe(str(real_data / "en_ami_excerpts_pyannote/tst00.wav")).codec == "pcm_f32le"
    assert probe(str(real_data / "short_refs/multilingual.mp3")).sample_rate == 24000


def test_decode_to_pcm_matches_the_stream(real_data: Path, tmp_path: Path) -> None:
    path = real_data / "short_refs/jfk.flac"
    out = tmp_path / "cache" / "jfk.s16"
    result = decode_to_pcm(str(path), out)
    assert result.warning is None
    assert out.stat().st_size == 2 * result.n_samples
    expected = np.clip(np.rint(decode_all(path) * 32768), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(open_pcm(out), expected)
    assert [p.name for p in out.parent.iterdir()] == ["jfk.s16"]  # no temporary file left behind


# ---- formats, rates, channels -----------------------------------------------------------------


@pytest.mark.parametrize(("subtype", "rate", "channels"), [
    ("PCM_16", 16000, 1), ("PCM_24", 48000, 2), ("PCM_32", 22050, 1), ("FLOAT", 44100, 1), ("PCM_16", 8000, 2),
])
def test_wav_subtypes_rates_and_channels(tmp_path: Path, subtype: str, rate: int, channels: int) -> None:
    x = np.stack([tone(rate, 2.5)] * channels, axis=1)
    path = tmp_path / "x.wav"
    sf.write(str(path), x, rate, subtype=subtype)
    pcm = decode_all(path)
    assert len(pcm) == round(2.5 * SR)
    # A 440 Hz tone survives resampling and downmixing at its level (0.5 peak, rms 0.354).
    assert np.sqrt(np.mean(pcm[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize(("fmt", "subtype", "rate"), [("FLAC", "PCM_16", 44100), ("OGG", "VORBIS", 32000),
                                                      ("OGG", "OPUS", 48000)])
def test_soundfile_codecs(tmp_path: Path, fmt: str, subtype: str, rate: int) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(str(path), tone(rate, 3.0), rate, format=fmt, subtype=subtype)
    pcm = decode_all(path)
    assert abs(len(pcm) / SR - 3.0) <= TOLERANCE_S
    assert np.sqrt(np.mean(pcm[2000:-2000] ** 2)) == pytest.approx(0.354, rel=0.05)


def test_stereo_downmix_is_the_mean_of_the_channels(tmp_path: Path) -> None:
    x = tone(SR, 1.0)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([x, np.zeros_like(x)], axis=1), SR, subtype="FLOAT")
    np.testing.assert_allclose(decode_all(path), x / 2, atol=1e-6)


def test_m4a_aac_decodes_through_pyav(tmp_path: Path) -> None:
    path = tmp_path / "talk.m4a"
    write_m4a(path, tone(44100, 3.0), 44100)
    info = probe(str(path))
    assert (info.codec, info.sample_rate, info.channels) == ("aac", 44100, 1)
    pcm = decode_all(path)
    # AAC adds encoder priming and pads the last frame (1024 samples each); files without an edit list
    # keep them, so allow two AAC frames.
    assert abs(len(pcm) / SR - 3.0) <= 2 * 1024 / 44100 + TOLERANCE_S
    assert np.sqrt(np.mean(pcm[4000:-4000] ** 2)) == pytest.approx(0.354, rel=0.1)


# ---- streaming and resampling -------------------------------------------------------------------


def test_blocks_are_bounded_and_join_without_clicks(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(str(path), tone(44100, 12.0, freq=200.0), 44100, subtype="PCM_16")
    blocks = list(iter_decode_16k(str(path), block_s=1.0))
    assert max(len(b) for b in blocks) <= 1.05 * SR  # memory is one block, not the file
    pcm = np.concatenate(blocks)
    assert len(pcm) == 12 * SR
    np.testing.assert_allclose(pcm, decode_all(path, block_s=5.0), atol=1e-6)
    # A click would show up as a jump far larger than a 200 Hz sine's largest step.
    max_step = 2 * np.pi * 200 / SR * 0.5
    assert np.abs(np.diff(pcm[100:-100])).max() <= 1.01 * max_step


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 24000, 32000, 44100, 48000, 96000])
def test_resampler_is_accurate_and_exact_in_length(rate: int) -> None:
    x = tone(rate, 2.0, freq=1000.0)
    r = PolyphaseResampler(rate, SR)
    y = np.concatenate([r.process(x), r.flush()])
    assert len(y) == round(len(x) * SR / rate)
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(len(y)) / SR)
    assert np.abs(y - expected)[200:-200].max() < 1e-3  # aligned in time: no delay, no gain error


def test_resampler_removes_what_would_alias() -> None:
    x = tone(48000, 1.0, freq=12000.0)  # above the 8 kHz Nyquist frequency of the output
    r = PolyphaseResampler(48000, SR)
    y = np.concatenate([r.process(x), r.flush()])
    assert np.sqrt(np.mean(y[200:-200] ** 2)) < 1e-3


@settings(max_examples=25, deadline=None)
@given(rate=st.sampled_from([8000, 22050, 44100]), cuts=st.lists(st.integers(0, 9000), max_size=6))
def test_resampler_output_does_not_depend_on_block_boundaries(rate: int, cuts: list[int]) -> None:
    x = np.random.default_rng(0).standard_normal(9000).astype(np.float32)
    whole = PolyphaseResampler(rate, SR)
    expected = np.concatenate([whole.process(x), whole.flush()])
    parts = PolyphaseResampler(rate, SR)
    edges = [0, *sorted(cuts), len(x)]
    got = np.concatenate([parts.process(x[a:b]) for a, b in itertools.pairwise(edges)] + [parts.flush()])
    np.testing.assert_allclose(got, expected, atol=1e-5)


# ---- broken input -----------------------------------------------------------------------------


def test_text_file_named_mp3_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("these are meeting notes, not a recording\n" * 20)
    with pytest.raises(AudioError, match="not an audio file"):
        probe(str(path))
    with pytest.raises(AudioError, match="not an audio file"):
        decode_to_pcm(str(path), tmp_path / "notes.s16")
    assert not list(tmp_path.glob("*.s16*"))


def test_random_bytes_named_wav_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(AudioError, match="not an audio file"):
        list(iter_decode_16k(str(path)))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").touch()
    with pytest.raises(AudioError, match=r"empty file \(0 bytes\)"):
        probe(str(tmp_path / "empty.wav"))
    with pytest.raises(AudioError, match="file not found"):
        list(iter_decode_16k(str(tmp_path / "missing.wav")))


def test_wav_with_zero_samples_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros(0, np.int16), SR)
    with pytest.raises(AudioError, match="no audio: the file holds 0 samples"):
        probe(str(path))
    with pytest.raises(AudioError, match="no audio"):
        decode_to_pcm(str(path), tmp_path / "zero.s16")
    assert not list(tmp_path.glob("*.s16*"))


def truncated_wav(path: Path, claimed_s: float, present_s: float) -> None:
    """A 16-bit wav whose header promises ``claimed_s`` but whose data stops after ``present_s``."""
    data = (tone(SR, present_s) * 32767).astype("<i2").tobytes()
    claimed = int(claimed_s * SR) * 2
    header = (b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, SR, 2 * SR, 2, 16) + b"data" + struct.pack("<I", claimed))
    path.write_bytes(header + data)


def test_truncated_wav_decodes_what_is_readable_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    truncated_wav(path, claimed_s=120.0, present_s=3.2)
    result = decode_to_pcm(str(path), tmp_path / "cut.s16")
    assert result.n_samples == int(3.2 * SR)
    assert result.warning == "truncated: header says 120.0 s, 3.2 s readable; decoded what was readable"
    with pytest.warns(AudioWarning, match="truncated"):
        assert len(decode_all(path)) == int(3.2 * SR)


def test_complete_wav_has_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "ok.wav"
    sf.write(str(path), tone(SR, 1.0), SR, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_all(path)
    assert decode_to_pcm(str(path), tmp_path / "ok.s16").warning is None


def test_non_finite_samples_become_zero_with_a_warning(tmp_path: Path) -> None:
    x = tone(SR, 1.0)
    x[100:200] = np.nan
    x[300] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(str(path), x, SR, subtype="FLOAT")
    with pytest.warns(AudioWarning, match="non-finite"):
        pcm = decode_all(path)
    assert np.isfinite(pcm).all()
    assert not pcm[100:200].any() and pcm[300] == 0
    result = decode_to_pcm(str(path), tmp_path / "nan.s16")
    assert "non-finite samples" in (result.warning or "")
