"""Bad input never loses a recording: each case ends as a document or a failure row with a reason.

The corpus is generated here (nothing binary is committed). Each case states its expected outcome.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import duckdb
import numpy as np
import soundfile as sf
from vadpack.pipeline.cli import main

from tests.conftest import write_config

SR = 16000


def speechy(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Harmonic bursts (voiced-speech-like) separated by pauses, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = (np.sin(2 * np.pi * 0.4 * t) > -0.3).astype(np.float32)
    return (0.3 * voiced * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def wav_claiming_more_than_present(path: Path, claimed_s: float, present_s: float) -> None:
    data = (speechy(present_s) * 32767).astype("<i2").tobytes()
    claimed = int(claimed_s * SR) * 2
    header = b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16) + b"data" + struct.pack("<I", claimed)
    path.write_bytes(header + data)


# name -> (builder(path), expected outcome: ("document", check) or ("failure", stage, message regex))
def build_corpus(root: Path) -> dict[str, tuple]:
    rng = np.random.default_rng(7)
    cases: dict[str, tuple] = {}

    def case(name, build, *expect):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path)
        cases[str(path)] = expect

    case("empty.wav", lambda p: p.write_bytes(b""), "failure", "scan", r"empty file")
    case("truncated_header.wav", lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "failure", "scan",
         r"not an audio file|truncated|unreadable")
    case("claims_more.wav", lambda p: wav_claiming_more_than_present(p, 120.0, 3.2), "document",
         lambda d: abs(d["duration_s"] - 3.2) < 0.01 and "truncated" in (d["warning"] or ""))
    case("random_bytes.wav", lambda p: p.write_bytes(rng.bytes(4096)), "failure", "scan", r"not an audio file")
    case("text.mp3", lambda p: p.write_text("hello, I am not audio\n" * 50), "failure", "scan",
         r"not an audio file")
    case("zero_samples.wav", lambda p: sf.write(p, np.zeros(0, np.int16), SR), "failure", "scan",
         r"no audio|0 samples|empty")
    nan_audio = speechy(4.0)
    nan_audio[1000:1100] = np.nan
    nan_audio[5000:5010] = np.inf
    case("nan_inf_float.wav", lambda p: sf.write(p, nan_audio, SR, subtype="FLOAT"), "document",
         lambda d: abs(d["duration_s"] - 4.0) < 0.01 and "non-finite" in (d["warning"] or ""))
    case("one_sample.wav", lambda p: sf.write(p, np.array([1000], np.int16), SR), "document",
         lambda d: d["n_segments"] == 0 and d["text"] == "")
    six = np.tile(speechy(2.0, sr=96000)[:, None], (1, 6))
    case("hi_rate_6ch.wav", lambda p: sf.write(p, six, 96000, subtype="PCM_24"), "document",
         lambda d: abs(d["duration_s"] - 2.0) < 0.01 and d["n_segments"] >= 1)
    case("narrow_8k.wav", lambda p: sf.write(p, speechy(3.0, sr=8000), 8000), "document",
         lambda d: abs(d["duration_s"] - 3.0) < 0.01 and d["n_segments"] >= 1)
    for name in ("with spaces .wav", "ünïcødé 会议.wav", "semi;colon $(rm -rf x) `tick`.wav"):
        case(name, lambda p: sf.write(p, speechy(2.5), SR), "document", lambda d: d["n_segments"] >= 1)
    case("loop.wav", lambda p: os.symlink(p.name, p), "failure", "scan", r"symlink loop")
    case("dangling.flac", lambda p: os.symlink("does-not-exist.flac", p), "failure", "scan", r"not found")
    # A folder named like an audio file is walked, not listed: the file inside it is found.
    case("folder.wav/inside.wav", lambda p: sf.write(p, speechy(2.0), SR), "document",
         lambda d: d["n_segments"] >= 1)
    return cases


def test_bad_input_corpus_every_input_accounted_for(tmp_path, tiny_model, capsys):
    root = tmp_path / "corpus"
    cases = build_corpus(root)
    cfg = write_config(tmp_path, [str(root)], tiny_model, stitch={"formats": ["srt", "json", "txt"]})
    assert main(["run", str(cfg), "--no-progress"]) == 3  # some inputs failed, the run completed
    out = tmp_path / "work" / "output"
    docs = {r["path"]: r for r in duckdb.execute(
        "select * from read_parquet(?)", [str(out / "documents.parquet")]).df().to_dict("records")}
    fails = {r["path"]: r for r in duckdb.execute(
        "select * from read_parquet(?)", [str(out / "failures.parquet")]).df().to_dict("records")}
    lost = [p for p in cases if p not in docs and p not in fails]
    with capsys.disabled():
        print(f"\n[reliability] bad-input cases tried: {len(cases)}, documents: {len(docs)}, "
              f"failures: {len(fails)}, recordings lost: {len(lost)}")
    assert lost == [], f"inputs with neither a document nor a failure row: {lost}"
    assert set(docs) | set(fails) == set(cases)  # nothing invented either
    for path, (kind, *expect) in cases.items():
        name = Path(path).name
        if kind == "failure":
            assert path in fails and path not in docs, f"{name}: expected a failure row"
            stage, pattern = expect
            assert fails[path]["stage"] == stage, f"{name}: failed in {fails[path]['stage']}, not {stage}"
            import re

            assert re.search(pattern, fails[path]["error"]), f"{name}: unhelpful error {fails[path]['error']!r}"
        else:
            assert path in docs, f"{name}: expected a document, got failure {fails.get(path)}"
            assert expect[0](docs[path]), f"{name}: document not as expected: {docs[path]}"
    # Exports stay inside output_dir, one per document and format, whatever the input names were.
    for fmt in ("srt", "json", "txt"):
        files = list((out / fmt).iterdir())
        assert len(files) == len(docs)
        assert all(f.resolve().parent == (out / fmt).resolve() for f in files)


def test_three_hour_file_is_streamed(tmp_path, tiny_model):
    """A 3-hour recording (mostly silence, a burst of speech every 10 minutes) goes through."""
    path = tmp_path / "long" / "three_hours.wav"
    path.parent.mkdir()
    block = np.zeros(SR * 600, dtype=np.float32)
    block[: SR * 3] = speechy(3.0)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for _ in range(18):  # written in 10-minute blocks: the test itself never holds 3 hours
            f.write(block)
    cfg = write_config(tmp_path, [str(path.parent)], tiny_model)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = tmp_path / "work" / "output"
    doc = duckdb.execute("select duration_s from read_parquet(?)", [str(out / "documents.parquet")]).fetchone()
    assert math.isclose(doc[0], 3 * 3600, abs_tol=0.01)
    segs = duckdb.execute("select start_s, end_s from read_parquet(?)", [str(out / "segments.parquet")]).fetchall()
    # Every burst is found, at its place in the file, and nothing is found in the silence between.
    bursts = [(600.0 * k, 600.0 * k + 3.0) for k in range(18)]
    assert all(any(s < b_end and e > b_start for s, e in segs) for b_start, b_end in bursts)
    assert all(any(b_start - 1 <= s and e <= b_end + 1 for b_start, b_end in bursts) for s, e in segs)
