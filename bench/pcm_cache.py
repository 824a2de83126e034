"""What the PCM cache (work_dir/pcm/) costs on disk, and what a rerun pays without it.

Builds a small archive of real speech (the clips of examples/, resampled to 44.1 kHz stereo and
repeated to ``--minutes`` per file) in three formats: wav, flac and mp3. For each file it measures

* the cache file's bytes per audio hour (16 kHz mono int16: 115.2 MB exactly);
* reading the whole cache file back (what asr and speakers do with the cache: a memmap slice);
* decoding the source again into the cache (what ``ensure_contents_audio`` does when the PCM is
  gone: the extra cost of ``--stage speakers`` or a new asr model with ``vad.keep_pcm`` off);
* the cache file stored as FLAC instead (size, and the time to read it back), to see whether a
  compressed cache would be cheap;
* a real rerun, ``vadpack run --stage asr --force asr`` on the three files (a tiny random model, so
  that decoding the audio weighs as much as it can): with the cache, and with it dropped
  (``vad.keep_pcm: false``), where the run decodes the sources again first.

Usage: .venv/bin/python bench/pcm_cache.py [--minutes 5] [--repeat 3] [--workers 1]
The last line of output is one JSON object (see ../shared/BENCH.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vadpack.core.audio import decode_to_pcm
from vadpack.core.cache import SAMPLE_RATE, open_pcm

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLIPS = ["librispeech-1995-1837-0001.wav", "aishell-BAC009S0724W0121.wav", "en_pyannote_sample.wav", "jfk.flac"]
SOURCE_RATE = 44_100
HOUR_S = 3600.0


def speech(seconds: float) -> np.ndarray:
    """``seconds`` of real speech at 44.1 kHz stereo: the example clips one after another, repeated."""
    clips = []
    for name in CLIPS:
        audio, rate = sf.read(EXAMPLES / name, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        t = np.arange(int(len(mono) * SOURCE_RATE / rate)) * (rate / SOURCE_RATE)
        clips.append(np.interp(t, np.arange(len(mono)), mono).astype(np.float32))
    one = np.concatenate(clips)
    n = int(seconds * SOURCE_RATE)
    mono = np.tile(one, n // len(one) + 1)[:n]
    return np.stack([mono, 0.9 * mono], axis=1)


def best_of(repeat: int, fn, *args, **kwargs) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times)


def read_all(path: Path) -> float:
    pcm = open_pcm(path)
    total = 0.0
    for start in range(0, len(pcm), 30 * SAMPLE_RATE):  # segment by segment, as the stages read it
        total += float(np.asarray(pcm[start:start + 30 * SAMPLE_RATE], dtype=np.float32).sum())
    return total


def rerun_asr(tmp: Path, sources: list[Path], args: argparse.Namespace) -> dict:
    """Wall seconds of ``--stage asr --force asr`` with the PCM cache, and with it dropped."""
    from vadpack.testkit.tiny import write_tiny_model

    import vadpack

    archive = tmp / "archive"
    archive.mkdir()
    for src in sources:
        os.link(src, archive / src.name)
    model = write_tiny_model(tmp / "tiny", size="tiny", seed=0)
    out = {}
    for keep in (True, False):
        cfg = vadpack.make_config(inputs=archive, work_dir=tmp / f"work-{keep}",
                                  vad={"workers": args.workers, "keep_pcm": keep},
                                  asr={"model": str(model), "device": "cpu", "threads": 1, "warmup": False},
                                  stitch={"formats": []})
        first = vadpack.run(cfg, log_to_stderr=False)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            vadpack.run(cfg, stage="asr", force="asr", log_to_stderr=False)
            times.append(time.perf_counter() - t0)
        pcm_left = len(list((tmp / f"work-{keep}" / "pcm").glob("*.s16")))
        out["with_cache_s" if keep else "without_cache_s"] = round(min(times), 2)
        out["pcm_files_left" + ("_with" if keep else "_without")] = pcm_left
    hours = first.summary.audio_h
    out.update(audio_h=round(hours, 3), workers=args.workers,
               extra_s_per_audio_hour=round((out["without_cache_s"] - out["with_cache_s"]) / hours, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="audio minutes per file")
    ap.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    ap.add_argument("--workers", type=int, default=1, help="vad.workers of the rerun (decoding processes)")
    args = ap.parse_args()

    audio_s = args.minutes * 60
    signal = speech(audio_s)
    out: dict = {"audio_minutes_per_file": args.minutes, "formats": {}}
    with tempfile.TemporaryDirectory(prefix="pcm-bench-") as tmp:
        tmp = Path(tmp)
        for fmt, subtype in (("wav", "PCM_16"), ("flac", "PCM_16"), ("mp3", "MPEG_LAYER_III")):
            src = tmp / f"speech.{fmt}"
            sf.write(src, signal, SOURCE_RATE, subtype=subtype)
            cache = tmp / f"speech-{fmt}.s16"
            decode_s = best_of(args.repeat, decode_to_pcm, str(src), cache)
            read_s = best_of(args.repeat, read_all, cache)
            cached_audio_s = open_pcm(cache).size / SAMPLE_RATE
            out["formats"][fmt] = {
                "source_mb_per_hour": round(src.stat().st_size / audio_s * HOUR_S / 1e6, 1),
                "redecode_s_per_hour": round(decode_s / cached_audio_s * HOUR_S, 2),
                "cached_read_s_per_hour": round(read_s / cached_audio_s * HOUR_S, 3),
            }
        # The cache itself (the same for every format) and a FLAC-compressed cache of it.
        pcm = np.asarray(open_pcm(cache))
        cache_bytes_per_hour = cache.stat().st_size / (len(pcm) / SAMPLE_RATE) * HOUR_S
        flac = tmp / "cache.flac"
        encode_s = best_of(args.repeat, sf.write, flac, pcm, SAMPLE_RATE, subtype="PCM_16")
        flac_read_s = best_of(args.repeat, sf.read, flac, dtype="int16")
        back, _ = sf.read(flac, dtype="int16")
        assert np.array_equal(back, pcm), "FLAC is lossless: the samples come back unchanged"
        pcm_hours = len(pcm) / SAMPLE_RATE / HOUR_S
        flac_bytes = flac.stat().st_size
        out["rerun_asr"] = rerun_asr(tmp, [tmp / f"speech.{fmt}" for fmt in out["formats"]], args)
    redecode = {fmt: f["redecode_s_per_hour"] for fmt, f in out["formats"].items()}
    out.update({
        "cache_mb_per_audio_hour": round(cache_bytes_per_hour / 1e6, 2),
        "cache_tb_at_10000_hours": round(cache_bytes_per_hour * 10_000 / 1e12, 2),
        "flac_cache_mb_per_audio_hour": round(flac_bytes / pcm_hours / 1e6, 1),
        "flac_cache_encode_s_per_hour": round(encode_s / pcm_hours, 2),
        "flac_cache_read_s_per_hour": round(flac_read_s / pcm_hours, 2),
        # A rerun of speakers or asr over the whole archive without the cache: one core.
        "redecode_core_hours_at_10000_hours": {fmt: round(s * 10_000 / HOUR_S, 1) for fmt, s in redecode.items()},
        "device": f"cpu x{os.cpu_count()}",
        "date": date.today().isoformat(),
    })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
