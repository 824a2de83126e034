"""Batch invariance on the CPU: does a segment decode to the same result in its batch as alone?

Reads a vadpack work_dir that ``bench/e2e.py`` (or any run) left behind: its packed batches, its PCM
cache and its model (``config.resolved.yaml``). For each way of computing below, a fresh process loads
the model, decodes every batch (timed), then every segment of it alone (timed), and counts the
segments whose tokens or token times differ between the two:

- ``funasr_mkl_default``: FunASR's own batched forward (attention, encoder, predictor, decoder), MKL's
  default mode;
- ``funasr_mkl_strict``: the same in MKL's strict reproducible mode (``MKL_CBWR=AUTO,STRICT``);
- ``vadpack_mkl_default``: what vadpack runs on the CPU (``asr/invariant.py``: per-item attention,
  convolutions and CIF predictor, the packed encoder, and every linear layer's row count rounded as
  this machine's probe found), MKL's default mode;
- ``vadpack_mkl_strict``: the same in MKL's strict mode;
- ``vadpack_mkl_avx2``: the same with ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (on an Intel CPU with AVX-512
  this makes MKL take the code paths an AMD EPYC takes).

MKL reads its settings when a process makes its first matrix product, so each way runs in its own
process. ``batched_s`` of ``funasr_mkl_default`` and ``vadpack_mkl_default``, measured in the same run,
compares their speed (``vadpack_speedup``). Padding is the only difference between a segment alone and
in its batch besides the batch's size, so ``differ`` counts exactly what batching changes.

Usage:
    .venv/bin/python bench/e2e.py --hours 1 --replicas 2          # leaves bench/out/e2e/vadpack
    .venv/bin/python bench/batch_invariance.py                     # its first 20 batches
    .venv/bin/python bench/batch_invariance.py --batches 0         # all of them
    .venv/bin/python bench/batch_invariance.py --batches 0 --ways vadpack_mkl_default,vadpack_mkl_avx2
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAYS = {  # name: (vadpack's forwards, environment; MKL_CBWR unset is MKL's default mode)
    "funasr_mkl_default": (False, {}),
    "funasr_mkl_strict": (False, {"MKL_CBWR": "AUTO,STRICT"}),
    "vadpack_mkl_default": (True, {}),
    "vadpack_mkl_strict": (True, {"MKL_CBWR": "AUTO,STRICT"}),
    "vadpack_mkl_avx2": (True, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
}
MKL_SETTINGS = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work-dir", default=str(ROOT / "bench" / "out" / "e2e" / "vadpack"),
                   help="a vadpack work_dir with batches.parquet, pcm/ and config.resolved.yaml")
    p.add_argument("--batches", type=int, default=20, help="batches to check, in batch order (0: all)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    p.add_argument("--ways", default=",".join(WAYS),
                   help=f"comma-separated ways to run (default all: {','.join(WAYS)}); the speedup needs both "
                        "*_mkl_default ways")
    args = p.parse_args()
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    unknown = [w for w in ways if w not in WAYS]
    if unknown or not ways:
        p.error(f"--ways: unknown way {(unknown or [''])[0]!r}; choose from {', '.join(WAYS)}")
    work = Path(args.work_dir).resolve()
    if not (work / "batches.parquet").is_file():
        raise SystemExit(f"batch_invariance: {work} has no batches.parquet; run bench/e2e.py first or give --work-dir")
    result: dict = {}
    for name in ways:
        per_item, mode = WAYS[name]
        job = {"work_dir": str(work), "batches": args.batches, "threads": args.threads, "per_item": per_item}
        env = {**{k: v for k, v in os.environ.items() if k not in MKL_SETTINGS}, **mode}
        print(f"batch_invariance: {name}", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, "_child", json.dumps(job)], env=env, cwd=ROOT,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"batch_invariance: {name} failed:\n{out.stderr[-3000:]}")
        result[name] = json.loads(out.stdout.strip().splitlines()[-1])
    first = result[ways[0]]
    mine = [w for w in ways if WAYS[w][0]]
    result.update(
        segments=first["segments"], batches=first["batches"], threads=args.threads,
        bit_identical_in_any_batch=all(result[w]["differ"] == 0 for w in mine) if mine else None,
        model=first["model"], device=f"cpu x{os.cpu_count()}", cpu=_cpu_name(), date=datetime.date.today().isoformat(),
    )
    if "vadpack_mkl_default" in result and "funasr_mkl_default" in result:
        result["vadpack_speedup"] = round(result["funasr_mkl_default"]["batched_s"]
                                          / result["vadpack_mkl_default"]["batched_s"], 3)
    print(json.dumps(result))


def child(job: dict) -> dict:
    import pyarrow.parquet as pq
    import torch
    import yaml
    from vadpack.asr import attention, invariant, packed
    from vadpack.asr.config import AsrConfig
    from vadpack.asr.features import pad_features, segment_features
    from vadpack.asr.infer import decode_features
    from vadpack.asr.model import load_model
    from vadpack.core.cache import pcm_path, read_segment

    work = Path(job["work_dir"])
    model = yaml.safe_load((work / "config.resolved.yaml").read_text())["asr"]["model"]
    lm = load_model(AsrConfig(model=model, device="cpu", threads=job["threads"]))
    rows = lm.rows.describe() if lm.rows else ""
    if not job["per_item"]:
        attention.uninstall(lm.funasr_model)
        packed.uninstall(lm.funasr_model)
        invariant.uninstall(lm.funasr_model)
    batches = sorted(pq.read_table(work / "batches.parquet").to_pylist(), key=lambda b: b["batch_id"])
    if job["batches"]:
        batches = batches[: job["batches"]]
    differ = segments = 0
    batched_s = alone_s = 0.0
    with torch.no_grad():
        for batch in batches:
            items = list(zip(batch["content_ids"], batch["start_samples"], batch["end_samples"]))
            feats = [segment_features(lm.frontend, read_segment(pcm_path(work / "pcm", c), s, e)) for c, s, e in items]
            segment_ms = [(e - s) // 16 for _, s, e in items]
            padded, lengths = pad_features(feats, feats[0].shape[1])
            t0 = time.perf_counter()
            together = decode_features(lm, padded, lengths, segment_ms)
            batched_s += time.perf_counter() - t0
            for i, f in enumerate(feats):
                one, one_len = pad_features([f], f.shape[1])
                t0 = time.perf_counter()
                alone = decode_features(lm, one, one_len, segment_ms[i: i + 1])[0]
                alone_s += time.perf_counter() - t0
                segments += 1
                differ += alone != together[i]
    return {"differ": differ, "segments": segments, "batches": len(batches), "batched_s": round(batched_s, 2),
            "alone_s": round(alone_s, 2), "row_probe": rows, "mkl_cbwr": os.environ.get("MKL_CBWR"),
            "mkl_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS"), "model": Path(model).name}


def _cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), since the result depends on the machine's BLAS kernels."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
