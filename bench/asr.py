"""Benchmark of the asr stage against FunASR's own pipeline, on the same segments and model.

Both sides decode the same speech segments of the same recordings with the same randomly
initialised Paraformer (large by default: it costs what the trained model costs):

- vadpack: ``asr.stage.run_asr`` on batches packed across all recordings, audio from the PCM cache.
- FunASR: ``AutoModel(model=DIR, vad_model=<precomputed>).generate(input=files, batch_size_s=300)``,
  where the VAD model is registered here and returns our segments, so only the ASR part differs.

Both models are loaded and warmed up before timing. ``identical_to_funasr`` is the share of
segments whose tokens are identical; FunASR's tokens are tapped from its tokenizer per segment,
because its own output merges a recording's text (and blanks the whole recording when one
segment decodes to nothing: ``funasr_recordings_blanked``).

Usage: ``.venv/bin/python bench/asr.py [--audio-s 90] [--size large] [--device auto]``.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr.config import AsrConfig  # noqa: E402
from asr.stage import run_asr  # noqa: E402
from asr.tiny import write_tiny_model  # noqa: E402
from pipeline.cache import SAMPLE_RATE, pcm_path, read_segment  # noqa: E402
from pipeline.tables import TRANSCRIPTS, VAD_SEGMENTS, read_table, to_table  # noqa: E402
from tests.asr.synth import speech_like, write_pcm  # noqa: E402

VAD_NAME = "VadpackPrecomputedVad"
Key = tuple[str, int]


def main() -> None:
    args = parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-asr-"))
    model_dir = work / f"model-{args.size}"
    if not (model_dir / "model.pt").exists():
        write_tiny_model(model_dir, size=args.size, seed=0)
    archive = make_archive(work, args.audio_s, args.recordings, seed=args.seed)
    threads = args.threads or os.cpu_count() or 1
    ours, our_tokens = run_vadpack(archive, model_dir, work, args, threads)
    funasr_s, their_tokens, blanked = run_funasr(archive, model_dir, args.device, threads)
    audio_s = archive["audio_s"]
    identical = sum(their_tokens.get(k) == our_tokens.get(k) for k in our_tokens)
    result = {
        "model_busy": round(ours["model_busy"], 3),
        "vadpack_xrt": round(ours["xrt"], 2),
        "funasr_xrt": round(audio_s / funasr_s, 2),
        "ratio_vs_funasr": round(ours["xrt"] / (audio_s / funasr_s), 2),
        "identical_to_funasr": round(identical / max(len(our_tokens), 1), 4),
        "segments": len(our_tokens), "audio_s": round(audio_s, 1), "batches": ours["batches"],
        "vadpack_wall_s": round(ours["wall_s"], 2), "funasr_wall_s": round(funasr_s, 2),
        "funasr_recordings_blanked": blanked, "model": f"random paraformer-{args.size}",
        "threads": threads, "feature_workers": args.feature_workers, "budget_s": args.budget_s,
        "device": device_name(ours["device"]), "date": datetime.date.today().isoformat(),
    }
    print(json.dumps(result))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--audio-s", type=float, default=90.0, help="seconds of speech in all (default 90)")
    p.add_argument("--recordings", type=int, default=4, help="recordings the speech is spread over")
    p.add_argument("--size", choices=("tiny", "large"), default="large", help="random model size")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: one per core)")
    p.add_argument("--feature-workers", type=int, default=min(4, (os.cpu_count() or 1) // 4),
                   help="vadpack feature worker processes (default: a quarter of the cores, at most 4)")
    p.add_argument("--budget-s", type=float, default=300.0, help="padded seconds per vadpack batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", help="work folder (default: a new temporary folder)")
    return p.parse_args()


def make_archive(work: Path, audio_s: float, n_recordings: int, seed: int) -> dict:
    """Recordings (wav files and PCM cache) of speech-like segments between pauses.

    Segment lengths follow a log-normal around 5 s within [0.4, 30] s, as VAD cuts meetings. Segment
    edges fall on whole milliseconds, because FunASR's VAD interface speaks milliseconds.
    """
    rng = np.random.default_rng(seed)
    rows, wavs, total = [], [], 0.0
    per_rec = audio_s / n_recordings
    for r in range(n_recordings):
        rid, chunks, pos, speech, idx = f"rec{r:02d}", [], 0, 0.0, 0
        while speech < per_rec:
            gap = _ms(rng.uniform(0.3, 2.0))
            dur = _ms(min(max(rng.lognormal(np.log(5.0), 0.7), 0.4), 30.0, max(per_rec - speech, 0.4)))
            audio = speech_like(dur / SAMPLE_RATE, seed + r * 997 + idx)
            chunks += [rng.normal(0, 0.001, gap).astype(np.float32), audio]
            rows.append({"recording_id": rid, "segment_index": idx, "start_sample": pos + gap,
                         "end_sample": pos + gap + dur, "backend": "synthetic"})
            pos, speech, idx = pos + gap + dur, speech + dur / SAMPLE_RATE, idx + 1
        wavs.append(_write_recording(work, rid, np.concatenate([*chunks, np.zeros(SAMPLE_RATE, np.float32)])))
        total += speech
    warmup = _write_recording(work, "warmup", speech_like(3.0, seed + 12345))
    return {"cache_dir": work / "pcm", "segments": to_table(rows, VAD_SEGMENTS), "wavs": wavs,
            "audio_s": total, "warmup_wav": warmup}


def _write_recording(work: Path, rid: str, audio: np.ndarray) -> str:
    """The PCM cache file and a wav file with the same samples; returns the wav path."""
    write_pcm(work / "pcm", rid, audio)
    pcm = np.fromfile(pcm_path(work / "pcm", rid), dtype="<i2")
    sf.write(work / f"{rid}.wav", pcm, SAMPLE_RATE, subtype="PCM_16")
    return str(work / f"{rid}.wav")


def _ms(seconds: float) -> int:
    """Seconds rounded to whole milliseconds, in samples."""
    return round(seconds * 1000) * (SAMPLE_RATE // 1000)


def pack(segments: pa.Table, budget_s: float) -> pa.Table:
    from packer.config import PackerConfig
    from packer.pack import pack_segments

    return pack_segments(segments, PackerConfig(budget_s=budget_s)).batches


def run_vadpack(archive: dict, model_dir: Path, work: Path, args: argparse.Namespace,
                threads: int) -> tuple[dict, dict[Key, tuple[str, ...]]]:
    cfg = AsrConfig(model=str(model_dir), device=args.device, threads=threads,
                    feature_workers=args.feature_workers, prefetch=4, batches_per_part=16, warmup=True)
    parts = work / f"transcripts-{time.time_ns()}"
    batches = pack(archive["segments"], args.budget_s)
    summary = run_asr(batches, archive["segments"], archive["cache_dir"], parts, cfg, progress=False,
                      log=lambda msg: print(msg, file=sys.stderr))
    table = read_table(parts, TRANSCRIPTS)
    tokens = {(r["recording_id"], r["segment_index"]): tuple(r["tokens"]) for r in table.to_pylist()}
    return summary, tokens


def run_funasr(archive: dict, model_dir: Path, device: str, threads: int
               ) -> tuple[float, dict[Key, tuple[str, ...]], int]:
    """FunASR's own VAD + ASR path with our segments; (wall seconds, tokens per segment, blanked)."""
    from funasr import AutoModel

    register_precomputed_vad()
    segments_ms = _segments_ms(archive["segments"])
    segments_ms["warmup"] = [[0, 3000]]
    fingerprints = _fingerprints(archive)
    with contextlib.redirect_stdout(io.StringIO()):
        am = AutoModel(model=str(model_dir), vad_model=VAD_NAME, device=_funasr_device(device),
                       ncpu=threads, vad_kwargs={"model_conf": {}, "segments_ms": segments_ms},
                       disable_update=True, disable_pbar=True, log_level="ERROR")
    tap = TokenTap(am)
    am.generate(input=[archive["warmup_wav"]], batch_size_s=300)  # warm-up, untimed
    tap.seen.clear()
    t0 = time.perf_counter()
    results = am.generate(input=archive["wavs"], batch_size_s=300)
    wall_s = time.perf_counter() - t0
    tokens = {fingerprints[fp]: toks for fp, toks in tap.seen if fp in fingerprints}
    blanked = sum(not r.get("text") for r in results) + len(archive["wavs"]) - len(results)
    return wall_s, tokens, blanked


def register_precomputed_vad() -> None:
    """Register a FunASR 'VAD model' that returns the segments it was built with, per file."""
    import torch
    from funasr.register import tables

    @tables.register("model_classes", VAD_NAME)
    class PrecomputedVad(torch.nn.Module):
        def __init__(self, segments_ms: dict[str, list[list[int]]] | None = None, **kwargs) -> None:
            super().__init__()
            self.segments_ms = segments_ms or {}
            # FunASR looks up a model's device from its first parameter.
            self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

        def inference(self, data_in, data_lengths=None, key=None, **kwargs):
            paths = data_in if isinstance(data_in, (list, tuple)) else [data_in]
            results = [{"key": k, "value": self.segments_ms[Path(p).stem]} for k, p in zip(key, paths)]
            return results, {}


class TokenTap:
    """Records, per segment FunASR decodes, the audio's fingerprint and the tokens it produced.

    FunASR's model ``inference`` turns each item's ids into tokens with the tokenizer it is given;
    the tap hands it a recording proxy of that tokenizer, which costs nothing measurable. A batch
    whose items all decode to nothing returns before the tokenizer: its items get empty tokens.
    """

    def __init__(self, am) -> None:
        self.seen: list[tuple[str, tuple[str, ...]]] = []
        inference = am.model.inference

        def tapped_inference(data_in, *args, **kwargs):
            proxy = _RecordingTokenizer(kwargs["tokenizer"])
            out = inference(data_in, *args, **{**kwargs, "tokenizer": proxy})
            items = data_in if isinstance(data_in, (list, tuple)) else [data_in]
            toks = proxy.calls + [()] * (len(items) - len(proxy.calls))
            self.seen.extend(zip((_fingerprint(np.asarray(x, dtype=np.float32)) for x in items), toks))
            return out

        am.model.inference = tapped_inference


class _RecordingTokenizer:
    """A tokenizer that remembers what ``ids2tokens`` returned; everything else is the wrapped one's."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, ...]] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def ids2tokens(self, ids):
        out = self.inner.ids2tokens(ids)
        self.calls.append(tuple(out))
        return out


def _fingerprint(audio: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()


def _fingerprints(archive: dict) -> dict[str, Key]:
    seg = archive["segments"].to_pylist()
    cache = archive["cache_dir"]
    return {_fingerprint(read_segment(pcm_path(cache, s["recording_id"]), s["start_sample"],
                                      s["end_sample"])): (s["recording_id"], s["segment_index"]) for s in seg}


def _segments_ms(segments: pa.Table) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {}
    for s in segments.to_pylist():
        out.setdefault(s["recording_id"], []).append([s["start_sample"] // 16, s["end_sample"] // 16])
    return out


def _funasr_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    return "cuda:0" if device == "cuda" else device


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu x{os.cpu_count()}"


if __name__ == "__main__":
    main()
