"""What bfloat16 and float16 change: against float32, and between batchings of the same segments.

The same real speech segments (2-8 s, cut at labelled utterances of ../shared/data/real: Mandarin
from the FunASR VAD example's transcript, English from the pyannote sample, the MFA recording and
LibriVox utterances, taken in turn) are decoded by the random Paraformer-large (``testkit.tiny``,
``size="large"``: it computes what the trained model computes) in float32, bfloat16 and float16,
each three ways: every segment alone, in length-sorted batches of 4, and in shuffled batches of 8
(different neighbours, different padding). Features are computed once, in float32, and shared.

Figures (fractions of segments unless named otherwise):

- ``bf16_tokens_equal_fp32`` / ``fp16_tokens_equal_fp32``: tokens identical to float32's, alone.
- ``bf16_batch_invariant`` / ``fp16_batch_invariant`` (and ``fp32_batch_invariant``, the control):
  tokens and times identical alone and in both batchings.
- ``bf16_token_agreement`` / ``fp16_token_agreement``: 1 - edit distance / float32 tokens, summed
  over the segments (alone).
- ``*_moved_token_fraction``, ``*_mean_timestamp_drift_ms``: over the tokens shared with float32
  (aligned by ``difflib``), how many moved and by how much (start and end); ``max_timestamp_drift_ms``
  is the largest move of any shared token in either half precision.
- ``*_s``: seconds each precision took for its three passes (CPU: noisy on a shared machine).

Usage: ``.venv/bin/python bench/precision.py [--segments 16] [--device cpu|cuda]``. The last line of
output is one JSON object (keys: ../shared/BENCH.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import difflib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vadpack.asr.config import AsrConfig  # noqa: E402
from vadpack.asr.features import pad_features, segment_features  # noqa: E402
from vadpack.asr.infer import decode_features  # noqa: E402
from vadpack.asr.model import load_model  # noqa: E402
from vadpack.asr.types import SegmentResult  # noqa: E402
from vadpack.core.cache import SAMPLE_RATE  # noqa: E402
from vadpack.testkit.tiny import write_tiny_model  # noqa: E402

from tests.support.audio import iter_decode_16k  # noqa: E402

REAL = Path(os.environ.get("VADPACK_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))  # as the tests
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
BATCHINGS = {"alone": 1, "sorted": 4, "shuffled": 8}


@dataclass(frozen=True, slots=True)
class Utterance:
    """A labelled stretch of speech in a recording."""

    path: Path
    start_s: float
    end_s: float

    @property
    def name(self) -> str:
        return f"{self.path.name}@{self.start_s:.2f}"


def main() -> None:
    args = parse_args()
    utterances = pick_utterances(args.segments, args.min_s, args.max_s)
    audio = [load_audio(u) for u in utterances]
    model_dir = model_folder(Path(args.work or tempfile.mkdtemp(prefix="bench-precision-")), args.size)
    results, seconds = {}, {}
    for key, dtype in DTYPES.items():
        t0 = time.perf_counter()
        results[key] = decode_three_ways(model_dir, dtype, args, audio)
        seconds[f"{key}_s"] = round(time.perf_counter() - t0, 1)
        print(f"precision: {dtype} done in {seconds[f'{key}_s']} s", file=sys.stderr)
    out = {"segments": len(audio), "audio_s": round(sum(len(a) for a in audio) / SAMPLE_RATE, 1),
           "model": f"random paraformer-{args.size}", "batchings": list(BATCHINGS), **figures(results), **seconds,
           "device": device_name(args.device), "date": datetime.date.today().isoformat()}
    print(json.dumps(out))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segments", type=int, default=16, help="real speech segments (default 16)")
    p.add_argument("--min-s", type=float, default=2.0, help="shortest segment in seconds")
    p.add_argument("--max-s", type=float, default=8.0, help="longest segment in seconds")
    p.add_argument("--size", choices=("tiny", "large"), default="large", help="random model (tiny: smoke test)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="order of the shuffled batching")
    p.add_argument("--work", help="folder for the model (default: a new temporary folder)")
    return p.parse_args()


# ---- segments ------------------------------------------------------------------------------------


def pick_utterances(n: int, min_s: float, max_s: float) -> list[Utterance]:
    """``n`` labelled utterances of ``min_s`` to ``max_s`` seconds, taken from each source in turn."""
    sources = [[u for u in source() if min_s <= u.end_s - u.start_s <= max_s]
               for source in (_zh_vad_example, _pyannote_sample, _mfa_recording, _librivox)]
    picked: list[Utterance] = []
    for i in range(max(len(s) for s in sources)):
        picked += [s[i] for s in sources if i < len(s)]
    if len(picked) < n:
        raise SystemExit(f"only {len(picked)} utterances of {min_s}-{max_s} s in {REAL}; ask for fewer")
    return picked[:n]


def _zh_vad_example() -> list[Utterance]:
    path = REAL / "zh_funasr_vad_example"
    lines = (path / "silver_transcript.tsv").read_text(encoding="utf-8").splitlines()
    rows = csv.reader((line for line in lines if line and not line.startswith("#")), delimiter="\t")
    return [Utterance(path / "vad_example.wav", float(r[0]), float(r[1])) for r in rows]


def _labelled(name: str) -> list[Utterance]:
    labels = json.loads((REAL / "labels.json").read_text(encoding="utf-8"))[name]
    return [Utterance(REAL / name, float(start), float(end)) for start, end, _ in labels["transcript"]]


def _pyannote_sample() -> list[Utterance]:
    return _labelled("en_pyannote_sample/sample.wav")


def _mfa_recording() -> list[Utterance]:
    return _labelled("en_mfa_stereo/michaelandsickmichael.wav")


def _librivox() -> list[Utterance]:
    import soundfile as sf

    files = sorted((REAL / "en_pocketsphinx_librivox").glob("*.wav"))
    return [Utterance(f, 0.0, sf.info(str(f)).duration) for f in files]  # each file is one utterance


def load_audio(u: Utterance) -> np.ndarray:
    """The utterance as 16 kHz mono float32 (stereo mixed down, other rates resampled)."""
    audio = np.concatenate(list(iter_decode_16k(str(u.path))))
    return audio[round(u.start_s * SAMPLE_RATE): round(u.end_s * SAMPLE_RATE)]


def model_folder(work: Path, size: str) -> Path:
    model_dir = work / f"model-{size}"
    if not (model_dir / "model.pt").exists():
        write_tiny_model(model_dir, size=size, seed=0)
    return model_dir


# ---- decoding ------------------------------------------------------------------------------------


def decode_three_ways(model_dir: Path, dtype: str, args: argparse.Namespace,
                      audio: list[np.ndarray]) -> dict[str, list[SegmentResult]]:
    """Each batching's results, in segment order."""
    lm = load_model(AsrConfig(model=str(model_dir), device=args.device, dtype=dtype,
                              threads=args.threads or os.cpu_count() or 1))
    feats = [segment_features(lm.frontend, a) for a in audio]
    segment_ms = [len(a) * 1000 // SAMPLE_RATE for a in audio]
    out = {}
    for name, size in BATCHINGS.items():
        results: list[SegmentResult | None] = [None] * len(audio)
        for batch in batch_orders(segment_ms, name, size, args.seed):
            f, n = pad_features([feats[i] for i in batch], lm.frontend_info.feature_dim)
            for i, r in zip(batch, decode_features(lm, f, n, [segment_ms[i] for i in batch])):
                results[i] = r
        out[name] = results
    return out


def batch_orders(segment_ms: list[int], name: str, size: int, seed: int) -> list[list[int]]:
    """Segment indices grouped into batches of ``size``: in order, by length, or shuffled."""
    order = list(range(len(segment_ms)))
    if name == "sorted":
        order.sort(key=lambda i: segment_ms[i])
    elif name == "shuffled":
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(order))]
    return [order[i: i + size] for i in range(0, len(order), size)]


# ---- figures -------------------------------------------------------------------------------------


def figures(results: dict[str, dict[str, list[SegmentResult]]]) -> dict:
    ref = results["fp32"]["alone"]
    out: dict = {"fp32_batch_invariant": _invariant(results["fp32"])}
    drift_max = 0.0
    for key in ("bf16", "fp16"):
        alone = results[key]["alone"]
        out[f"{key}_tokens_equal_fp32"] = _fraction(a.tokens == r.tokens for a, r in zip(alone, ref))
        out[f"{key}_batch_invariant"] = _invariant(results[key])
        out[f"{key}_batch_tokens_invariant"] = _invariant(results[key], tokens_only=True)
        out[f"{key}_token_agreement"] = token_agreement(alone, ref)
        drifts = [d for a, r in zip(alone, ref) for d in shared_token_drifts_ms(a, r)]
        out[f"{key}_moved_token_fraction"] = _fraction(d > 0 for d in drifts)
        out[f"{key}_mean_timestamp_drift_ms"] = round(float(np.mean(drifts)), 1) if drifts else 0.0
        drift_max = max([drift_max, *drifts])
    out["max_timestamp_drift_ms"] = drift_max
    return out


def _invariant(by_batching: dict[str, list[SegmentResult]], tokens_only: bool = False) -> float:
    """Fraction of segments whose result is the same in every batching."""
    def key(r: SegmentResult) -> object:
        return r.tokens if tokens_only else r

    runs = list(by_batching.values())
    return _fraction(all(key(run[i]) == key(runs[0][i]) for run in runs) for i in range(len(runs[0])))


def token_agreement(results: list[SegmentResult], reference: list[SegmentResult]) -> float:
    """1 - (summed edit distance to the reference tokens) / (summed reference tokens)."""
    edits = sum(edit_distance(a.tokens, r.tokens) for a, r in zip(results, reference))
    return round(1.0 - edits / max(sum(len(r.tokens) for r in reference), 1), 4)


def edit_distance(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """Levenshtein distance between two token sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def shared_token_drifts_ms(result: SegmentResult, reference: SegmentResult) -> list[float]:
    """For each token the two share (aligned by difflib), the larger move of its start or end."""
    matcher = difflib.SequenceMatcher(a=result.tokens, b=reference.tokens, autojunk=False)
    drifts = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            drifts.append(float(max(abs(result.token_start_ms[i] - reference.token_start_ms[j]),
                                    abs(result.token_end_ms[i] - reference.token_end_ms[j]))))
    return drifts


def _fraction(flags) -> float:
    flags = list(flags)
    return round(sum(flags) / max(len(flags), 1), 4)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu x{os.cpu_count()}"


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
