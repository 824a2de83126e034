"""The run summary printed after `vadpack run`, computed from the work tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from pipeline.cache import SAMPLE_RATE
from pipeline.config import Config
from pipeline.stages import StageResult
from pipeline.tables import BATCHES, RECORDINGS, TRANSCRIPTS, VAD_RECORDINGS, read_table


def run_summary(cfg: Config, results: dict[str, StageResult], wall_s: float) -> dict:
    """Figures of the whole run (also for stages skipped as up to date)."""
    work = cfg.work_path
    s: dict = {"stages_run": list(results), "wall_s": wall_s, "output_dir": str(cfg.output_path),
               "dtype": cfg.asr.dtype}
    recs = _read(work / "recordings.parquet", RECORDINGS)
    vad = _read(work / "vad_recordings.parquet", VAD_RECORDINGS)
    batches = _read(work / "batches.parquet", BATCHES)
    trans = _read(work / "transcripts", TRANSCRIPTS)
    s["files"] = recs.num_rows if recs is not None else 0
    failed = 0
    if recs is not None:
        failed += pc.sum(pc.not_equal(recs["status"], "ok")).as_py() or 0
    if vad is not None:
        failed += pc.sum(pc.not_equal(vad["status"], "ok")).as_py() or 0
        s["audio_h"] = (pc.sum(vad["n_samples"]).as_py() or 0) / SAMPLE_RATE / 3600
        s["segments"] = pc.sum(vad["n_segments"]).as_py() or 0
    s["failed_inputs"] = failed
    s["failed_segments"] = (pc.sum(pc.not_equal(trans["status"], "ok")).as_py() or 0) if trans is not None else 0
    if batches is not None:
        padded = pc.sum(batches["padded_frames"]).as_py() or 0
        s["batches"] = batches.num_rows
        s["padding_efficiency"] = (pc.sum(batches["real_frames"]).as_py() or 0) / padded if padded else 1.0
    if s.get("audio_h") and wall_s > 0:
        s["xrt"] = s["audio_h"] * 3600 / wall_s
    for stage, r in results.items():
        s[f"{stage}_s"] = r.summary.get("wall_s", 0.0)
        if stage == "asr":
            s["asr"] = {k: v for k, v in r.summary.items() if isinstance(v, (int, float, str))}
        if stage == "pack":
            s["budget_s"] = r.summary.get("budget_s")
    return s


def _read(path: Path, schema):
    return read_table(path, schema) if path.exists() else None


def print_summary(s: dict) -> None:
    lines = [
        f"files          {s['files']}  (failed: {s['failed_inputs']})",
        f"audio          {s.get('audio_h', 0.0):.3f} h",
        f"segments       {s.get('segments', 0)}  (failed in asr: {s['failed_segments']})",
        f"batches        {s.get('batches', 0)}  padding efficiency {s.get('padding_efficiency', 1.0):.3f}",
        f"wall           {s['wall_s']:.1f} s  ({', '.join(s['stages_run']) or 'all stages up to date'})",
    ]
    if "xrt" in s and s["stages_run"]:
        lines.append(f"speed          {s['xrt']:.0f}x real time")
    if s.get("budget_s") is not None:
        lines.append(f"budget         {s['budget_s']:.0f} padded s per batch")
    if s.get("dtype", "float32") != "float32":
        lines.append(f"precision      {precision_note(s['dtype'])}")
    lines.append(f"output         {s['output_dir']}")
    print("\n".join(lines))


def precision_note(dtype: str) -> str:
    """One line on what a half precision costs in exactness, with its measured agreement."""
    from asr.config import HALF_PRECISION_AGREEMENT

    m = HALF_PRECISION_AGREEMENT[dtype]
    return (f"{dtype}: results may differ from float32 and between batchings (measured: "
            f"{m.token_agreement:.1%} token agreement with float32, {m.tokens_equal_fp32:.0%} of segments "
            f"identical, {m.batch_invariant:.0%} the same in every batching; bench/precision.py)")
