"""The run summary printed after `vadpack run`, computed from the work tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.tables import BATCHES, FAILURES, RECORDINGS, VAD_RECORDINGS, read_table
from vadpack.pipeline.config import Config
from vadpack.pipeline.stages import StageResult
from vadpack.pipeline.workdir import WorkDir

FAILURES_SHOWN = 10  # a run over thousands of bad files must not flood the terminal


def run_summary(cfg: Config, results: dict[str, StageResult], wall_s: float) -> dict:
    """Figures of the whole run (also for stages skipped as up to date)."""
    work = WorkDir(cfg.work_path)
    s: dict = {"stages_run": list(results), "wall_s": wall_s, "output_dir": str(cfg.output_path),
               "dtype": cfg.asr.dtype}
    recs = _read(work.recordings, RECORDINGS)
    vad = _read(work.vad_recordings, VAD_RECORDINGS)
    batches = _read(work.batches, BATCHES)
    failures = _read(cfg.output_path / "failures.parquet", FAILURES)
    s["files"] = recs.num_rows if recs is not None else 0
    failed = 0
    if recs is not None:
        failed += pc.sum(pc.not_equal(recs["status"], "ok")).as_py() or 0
    if vad is not None:
        failed += pc.sum(pc.not_equal(vad["status"], "ok")).as_py() or 0
        s["audio_h"] = (pc.sum(vad["n_samples"]).as_py() or 0) / SAMPLE_RATE / 3600
        s["segments"] = pc.sum(vad["n_segments"]).as_py() or 0
    s["failed_inputs"] = failed
    s["failed_segments"] = _failures_of(failures, "asr")
    s["failed_speakers"] = _failures_of(failures, "speakers")
    if batches is not None:
        padded = pc.sum(batches["padded_frames"]).as_py() or 0
        s["batches"] = batches.num_rows
        s["padding_efficiency"] = (pc.sum(batches["real_frames"]).as_py() or 0) / padded if padded else 1.0
    # Nothing decoded unless asr ran: every segment's transcript then came from the store.
    s.update(decoded_segments=0, decoded_audio_s=0.0, reused_segments=s.get("segments", 0))
    for stage, r in results.items():
        s[f"{stage}_s"] = r.summary.get("wall_s", 0.0)
        if stage == "speakers" and r.summary.get("enabled"):
            s["speakers"] = {k: v for k, v in r.summary.items() if isinstance(v, (int, float, str))}
        if stage == "asr":
            s["asr"] = {k: v for k, v in r.summary.items() if isinstance(v, (int, float, str))}
            for key in ("decoded_segments", "decoded_audio_s", "reused_segments"):
                s[key] = r.summary.get(key, 0)
        if stage == "pack":
            s["budget_s"] = r.summary.get("budget_s")
    if s.get("decoded_audio_s") and wall_s > 0:
        # Only what was decoded counts: audio whose transcript came from the store cost nothing here.
        s["xrt"] = s["decoded_audio_s"] / wall_s
    s.update(failure_rows(failures, cfg.output_path / "failures.parquet"))
    return s


def _failures_of(failures, stage: str) -> int:
    """Rows of ``failures.parquet`` (or None) of one stage."""
    return (pc.sum(pc.equal(failures["stage"], stage)).as_py() or 0) if failures is not None else 0


def failure_rows(failures, path: Path, show: int = FAILURES_SHOWN) -> dict:
    """The first ``show`` failures (path, stage, segment, reason), how many there are, and where."""
    if failures is None or failures.num_rows == 0:
        return {"failures": [], "n_failures": 0}
    rows = failures.sort_by([("path", "ascending"), ("segment_index", "ascending")]).slice(0, show)
    shown = [{k: r[k] for k in ("path", "stage", "segment_index", "error")} for r in rows.to_pylist()]
    return {"failures": shown, "n_failures": failures.num_rows, "failures_path": str(path)}


def _read(path: Path, schema):
    return read_table(path, schema) if path.exists() else None


def print_summary(s: dict) -> None:
    """The run's figures, and the inputs that failed with their reasons (the first few)."""
    lines = [
        f"files          {s['files']}  (failed: {s['failed_inputs']})",
        f"audio          {s.get('audio_h', 0.0):.3f} h",
        f"segments       {s.get('segments', 0)}  (failed in asr: {s['failed_segments']})",
        f"batches        {s.get('batches', 0)}"
        + (f"  padding efficiency {s.get('padding_efficiency', 1.0):.3f}" if s.get("batches") else ""),
        f"wall           {s['wall_s']:.1f} s  ({', '.join(s['stages_run']) or 'all stages up to date'})",
    ]
    if s["stages_run"]:
        lines.append(f"decoded        {s['decoded_segments']} segments, {s['decoded_audio_s']:.0f} s of audio  "
                     f"(reused from the store: {s['reused_segments']})")
    if "speakers" in s:
        sp = s["speakers"]
        speed = f", {sp['embed_xrt']:.0f}x real time" if sp.get("embed_xrt") else ""
        lines.append(f"speakers       {sp['labelled_recordings']} recordings labelled{speed}  "
                     f"(from the store: {sp['reused_recordings']})")
    if s.get("failed_speakers"):
        lines.append(f"               {s['failed_speakers']} speaker failures (see failures.parquet)")
    if "xrt" in s:
        lines.append(f"speed          {s['xrt']:.0f}x real time (decoded audio / wall time)")
    if s.get("budget_s") is not None:
        lines.append(f"budget         {s['budget_s']:.0f} padded s per batch")
    if s.get("dtype", "float32") != "float32":
        lines.append(f"precision      {precision_note(s['dtype'])}")
    lines.append(f"output         {s['output_dir']}")
    lines += failure_lines(s)
    print("\n".join(lines))


def precision_note(dtype: str) -> str:
    """One line on what a half precision costs in exactness, with its measured agreement."""
    from vadpack.asr.config import HALF_PRECISION_AGREEMENT

    m = HALF_PRECISION_AGREEMENT[dtype]
    return (f"{dtype}: results may differ from float32 and between batchings (measured: "
            f"{m.token_agreement:.1%} token agreement with float32, {m.tokens_equal_fp32:.0%} of segments "
            f"identical, {m.batch_invariant:.0%} the same in every batching; bench/precision.py)")


def failure_lines(s: dict) -> list[str]:
    """``failed ...`` lines: each failed input (or segment) with its reason, then how many more."""
    if not s.get("failures"):
        return []
    lines = [f"failed         {s['n_failures']} (every one with its reason in {s['failures_path']}):"]
    for f in s["failures"]:
        where = f"{f['stage']}" + (f", segment {f['segment_index']}" if f["segment_index"] is not None else "")
        lines.append(f"  {f['path']} ({where}): {f['error']}")
    if s["n_failures"] > len(s["failures"]):
        lines.append(f"  ... and {s['n_failures'] - len(s['failures'])} more")
    return lines
