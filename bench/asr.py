"""Benchmark of the asr stage against FunASR's own pipeline, on the same segments and model.

Both sides decode the same speech segments of the same recordings with the same randomly
initialised model (large by default: it costs what the trained model costs), Paraformer or, with
``--family sensevoice``, SenseVoice-Small (``write_tiny_sensevoice(size="large")``):

- vadpack: ``asr.stage.run_asr`` on batches packed across all recordings, audio from the PCM cache.
- FunASR: ``AutoModel(model=DIR, vad_model=<precomputed>).generate(input=files, batch_size_s=300)``,
  where the VAD model (``bench/_funasr_baseline.py``) returns our segments, so only the ASR part differs.

Both models are loaded and warmed up before timing. ``identical_to_funasr`` is the share of
segments whose tokens are identical; FunASR's tokens are tapped from its tokenizer per segment,
because its own output merges a recording's text (and blanks the whole recording when one
segment decodes to nothing: ``funasr_recordings_blanked``).

``--rss-3h`` also measures the memory of the asr stage on one generated 3-hour recording of mostly
speech (thousands of segments), with the tiny model by default (``--rss-size``): the stage runs in a
fresh process, with the default asr config, and reports its peak RSS, its RSS once the model is
loaded, the difference (``asr_rss_beyond_model_mb``; the target is under 3 GB), and the peak summed
RSS of its process tree (feature workers included). ``--audio-s 0 --rss-3h`` measures only that.

For SenseVoice, FunASR's tokens are the ids its inference decodes, written as vadpack writes
them (tags out, SentencePiece pieces in the project's convention: ``sensevoice_tokens``).

Usage: ``.venv/bin/python bench/asr.py [--audio-s 90] [--size large] [--family sensevoice] [--device auto]
[--rss-3h]``.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _funasr_baseline import (  # noqa: E402
    TokenTap,
    TreeRssSampler,
    build_automodel,
    current_rss_mb,
    device_name,
    fingerprint,
    generate_options,
    peak_rss_mb,
    segments_ms,
    speech_audio,
    write_pcm,
)
from vadpack.asr.config import AsrConfig  # noqa: E402
from vadpack.asr.types import AsrSummary  # noqa: E402
from vadpack.core.cache import SAMPLE_RATE, pcm_path, read_segment  # noqa: E402
from vadpack.core.tables import TRANSCRIPTS, VAD_SEGMENTS, read_table, to_table  # noqa: E402
from vadpack.testkit.tiny import write_tiny_model  # noqa: E402
from vadpack.testkit.tiny_sensevoice import write_tiny_sensevoice  # noqa: E402

Key = tuple[str, int]


def main() -> None:
    if sys.argv[1:2] == ["_rss_child"]:
        return rss_child(json.loads(sys.argv[2]))
    args = parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-asr-"))
    threads = args.threads or os.cpu_count() or 1
    result: dict = {}
    device = args.device
    if args.audio_s > 0:
        result, device = compare(args, work, threads)
    if args.rss_hours > 0:
        result.update(measure_rss(args, work, threads))
    result.update({"device": device_name(resolved_device(device)), "date": datetime.date.today().isoformat()})
    print(json.dumps(result))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--audio-s", type=float, default=90.0,
                   help="seconds of speech in all (default 90; 0 skips the comparison)")
    p.add_argument("--recordings", type=int, default=4, help="recordings the speech is spread over")
    p.add_argument("--size", choices=("tiny", "large"), default="large", help="random model size")
    p.add_argument("--family", choices=("paraformer", "sensevoice"), default="paraformer",
                   help="model family: Paraformer (CIF) or SenseVoice-Small (CTC)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: one per core)")
    p.add_argument("--feature-workers", type=int, default=min(4, (os.cpu_count() or 1) // 4),
                   help="vadpack feature worker processes (default: a quarter of the cores, at most 4)")
    p.add_argument("--budget-s", type=float, default=300.0, help="padded seconds per vadpack batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="work folder (default: a new temporary folder)")
    p.add_argument("--rss-3h", dest="rss_hours", action="store_const", const=3.0, default=0.0,
                   help="also measure the asr stage's peak RSS on a generated 3-hour recording")
    p.add_argument("--rss-hours", dest="rss_hours", type=float, help="the same, for this many hours")
    p.add_argument("--rss-size", choices=("tiny", "large"), default="tiny", help="model of the RSS run")
    return p.parse_args()


def resolved_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return device


# ---- vadpack vs FunASR on the same segments ------------------------------------------------------


def compare(args: argparse.Namespace, work: Path, threads: int) -> tuple[dict, str]:
    model_dir = model_folder(work, args.size, args.family)
    archive = make_archive(work / "compare", args.audio_s, args.recordings, seed=args.seed)
    ours, our_tokens = run_vadpack(archive, model_dir, work, args, threads)
    funasr_s, their_tokens, blanked = run_funasr(archive, model_dir, args.device, threads, args.family)
    audio_s = archive["audio_s"]
    identical = sum(their_tokens.get(k) == our_tokens.get(k) for k in our_tokens)
    return {
        "model_busy": round(ours.model_busy, 3),
        "vadpack_xrt": round(ours.xrt, 2),
        "funasr_xrt": round(audio_s / funasr_s, 2),
        "ratio_vs_funasr": round(ours.xrt / (audio_s / funasr_s), 2),
        "identical_to_funasr": round(identical / max(len(our_tokens), 1), 4),
        "segments": len(our_tokens), "audio_s": round(audio_s, 1), "batches": ours.batches,
        "vadpack_wall_s": round(ours.wall_s, 2), "funasr_wall_s": round(funasr_s, 2),
        "funasr_recordings_blanked": blanked, "model": f"random {args.family}-{args.size}",
        "threads": threads, "feature_workers": args.feature_workers, "budget_s": args.budget_s,
    }, ours.device


def model_folder(work: Path, size: str, family: str = "paraformer") -> Path:
    model_dir = work / (f"model-{size}" if family == "paraformer" else f"model-{family}-{size}")
    if not (model_dir / "model.pt").exists():
        write = write_tiny_sensevoice if family == "sensevoice" else write_tiny_model
        write(model_dir, size=size, seed=0)
    return model_dir


def make_archive(work: Path, audio_s: float, n_recordings: int, seed: int, wavs: bool = True) -> dict:
    """Recordings (PCM cache, and wav files unless ``wavs`` is off) of speech segments between pauses.

    Segment lengths follow a log-normal around 5 s within [0.4, 30] s, as VAD cuts meetings. Each
    recording is written to the cache as it is generated, so hours of audio need little memory.
    """
    rng = np.random.default_rng(seed)
    cache = work / "pcm"
    rows, paths, total = [], [], 0.0
    per_rec = audio_s / n_recordings
    for r in range(n_recordings):
        rid, pos, speech, idx = f"rec{r:02d}", 0, 0.0, 0
        write_pcm(cache, rid, np.zeros(0, np.float32))
        while speech < per_rec:
            gap = round(rng.uniform(0.3, 2.0) * SAMPLE_RATE)
            dur = round(min(max(rng.lognormal(np.log(5.0), 0.7), 0.4), 30.0, max(per_rec - speech, 0.4))
                        * SAMPLE_RATE)
            write_pcm(cache, rid, rng.normal(0, 0.001, gap), append=True)
            write_pcm(cache, rid, speech_audio(dur / SAMPLE_RATE, seed + r * 997 + idx), append=True)
            rows.append({"recording_id": rid, "segment_index": idx, "start_sample": pos + gap,
                         "end_sample": pos + gap + dur, "backend": "synthetic", "content_id": rid})
            pos, speech, idx = pos + gap + dur, speech + dur / SAMPLE_RATE, idx + 1
        write_pcm(cache, rid, np.zeros(SAMPLE_RATE, np.float32), append=True)
        paths.append(_wav_of(work, cache, rid) if wavs else None)
        total += speech
    write_pcm(cache, "warmup", speech_audio(3.0, seed + 12345))
    return {"cache_dir": cache, "segments": to_table(rows, VAD_SEGMENTS), "wavs": paths,
            "audio_s": total, "warmup_wav": _wav_of(work, cache, "warmup") if wavs else None}


def _wav_of(work: Path, cache: Path, rid: str) -> str:
    """A 16-bit wav file with exactly the samples of a recording's PCM cache file."""
    pcm = np.fromfile(pcm_path(cache, rid), dtype="<i2")
    sf.write(work / f"{rid}.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
    return str(work / f"{rid}.wav")


def pack(segments: pa.Table, budget_s: float) -> pa.Table:
    from vadpack.packer.config import PackerConfig
    from vadpack.packer.pack import pack_segments

    return pack_segments(segments, PackerConfig(budget_s=budget_s)).batches


def run_vadpack(archive: dict, model_dir: Path, work: Path, args: argparse.Namespace,
                threads: int) -> tuple[AsrSummary, dict[Key, tuple[str, ...]]]:
    from vadpack.asr.stage import run_asr

    cfg = AsrConfig(model=str(model_dir), device=args.device, threads=threads,
                    feature_workers=args.feature_workers, prefetch=4, batches_per_part=16, warmup=True)
    parts = work / f"transcripts-{time.time_ns()}"
    batches = pack(archive["segments"], args.budget_s)
    summary = run_asr(batches, archive["cache_dir"], parts, cfg, progress=False,
                      log=lambda msg: print(msg, file=sys.stderr))
    table = read_table(parts, TRANSCRIPTS)
    key_of = {(s["content_id"], s["start_sample"], s["end_sample"]): (s["recording_id"], s["segment_index"])
              for s in archive["segments"].to_pylist()}
    tokens = {key_of[(r["content_id"], r["start_sample"], r["end_sample"])]: tuple(r["tokens"])
              for r in table.to_pylist()}
    return summary, tokens


def run_funasr(archive: dict, model_dir: Path, device: str, threads: int, family: str = "paraformer"
               ) -> tuple[float, dict[Key, tuple[str, ...]], int]:
    """FunASR's own VAD + ASR path with our segments; (wall seconds, tokens per segment, blanked)."""
    wav_of = dict(zip((f"rec{r:02d}" for r in range(len(archive["wavs"]))), archive["wavs"]))
    spans = [(wav_of[s["recording_id"]], s["start_sample"], s["end_sample"])
             for s in archive["segments"].to_pylist()]
    segs = segments_ms(spans + [(archive["warmup_wav"], 0, 3 * SAMPLE_RATE)])
    fingerprints = _fingerprints(archive)
    am = build_automodel(model_dir, device, threads, segs)
    tap = TokenTap(am, family)
    options = generate_options(family)
    am.generate(input=[archive["warmup_wav"]], batch_size_s=300, **options)  # warm-up, untimed
    tap.record.clear()
    t0 = time.perf_counter()
    results = am.generate(input=archive["wavs"], batch_size_s=300, **options)
    wall_s = time.perf_counter() - t0
    tokens = {fingerprints[fp]: toks for fp, toks in tap.seen if fp in fingerprints}
    blanked = sum(not r.get("text") for r in results) + len(archive["wavs"]) - len(results)
    return wall_s, tokens, blanked


def _fingerprints(archive: dict) -> dict[str, Key]:
    cache = archive["cache_dir"]
    return {fingerprint(read_segment(pcm_path(cache, s["recording_id"]), s["start_sample"], s["end_sample"])):
            (s["recording_id"], s["segment_index"]) for s in archive["segments"].to_pylist()}


# ---- peak RSS of the asr stage on a long recording -----------------------------------------------


def measure_rss(args: argparse.Namespace, work: Path, threads: int) -> dict:
    """Run the asr stage on a generated ``args.rss_hours``-hour recording in a fresh process."""
    model_dir = model_folder(work, args.rss_size, args.family)
    t0 = time.perf_counter()
    # Segments of ~5.6 s between gaps of ~1.15 s: speech is about 85 % of the recording.
    archive = make_archive(work / "rss", args.rss_hours * 3600 * 0.85, 1, seed=args.seed + 1, wavs=False)
    audio_h = pcm_path(archive["cache_dir"], "rec00").stat().st_size / 2 / SAMPLE_RATE / 3600
    print(f"rss: generated {audio_h:.2f} h in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    batches = pack(archive["segments"], 300.0)
    job = {"model": str(model_dir), "device": args.device, "threads": threads, "work": str(work / "rss"),
           "out": str(work / "rss" / "result.json")}
    import pyarrow.parquet as pq

    pq.write_table(archive["segments"], work / "rss" / "segments.parquet")
    pq.write_table(batches, work / "rss" / "batches.parquet")
    proc = subprocess.Popen([sys.executable, __file__, "_rss_child", json.dumps(job)], stdout=sys.stderr)
    with TreeRssSampler(proc.pid) as sampler:
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"the asr RSS run failed with exit code {rc}")
    child = json.loads(Path(job["out"]).read_text())
    return {
        "rss_audio_h": round(audio_h, 2), "rss_segments": archive["segments"].num_rows,
        "rss_model": f"random {args.family}-{args.rss_size}",
        "asr_peak_rss_mb": round(child["peak_rss_mb"], 1),
        "asr_rss_after_load_mb": round(child["rss_after_load_mb"], 1),
        "asr_rss_beyond_model_mb": round(child["peak_rss_mb"] - child["rss_after_load_mb"], 1),
        "asr_tree_peak_rss_mb": round(sampler.peak_mb, 1), "rss_asr_wall_s": round(child["wall_s"], 1),
        "rss_feature_workers": child["feature_workers"],
    }


def rss_child(job: dict) -> None:
    """In a fresh process: load the model, note the RSS, run the asr stage, note the peak RSS."""
    from vadpack.asr.model import load_model
    from vadpack.asr.stage import run_asr
    from vadpack.core.tables import BATCHES

    work = Path(job["work"])
    cfg = AsrConfig(model=job["model"], device=job["device"], threads=job["threads"])  # defaults otherwise
    load_model(cfg)  # cached for the process: run_asr gets this one
    after_load = current_rss_mb()
    t0 = time.perf_counter()
    run_asr(read_table(work / "batches.parquet", BATCHES), work / "pcm", work / f"store-{time.time_ns()}", cfg,
            progress=False,
            log=lambda msg: print(msg, file=sys.stderr))
    Path(job["out"]).write_text(json.dumps({
        "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": after_load, "wall_s": time.perf_counter() - t0,
        "feature_workers": cfg.feature_workers}))


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
