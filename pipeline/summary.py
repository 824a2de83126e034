"""The run summary printed after `vadpack run`, computed from the work tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from vadpack.asr.types import AsrSummary
from vadpack.core.cache import SAMPLE_RATE
from vadpack.core.tables import BATCHES, FAILURES, RECORDINGS, VAD_RECORDINGS, read_table
from vadpack.pipeline.config import Config
from vadpack.pipeline.housekeeping import pcm_over_limit
from vadpack.pipeline.stages import StageResult
from vadpack.pipeline.types import AsrStageSummary, PackSummary, SpeakersStageSummary
from vadpack.pipeline.workdir import WorkDir

FAILURES_SHOWN = 10  # a run over thousands of bad files must not flood the terminal


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One row of ``failures.parquet`` as the summary shows it."""

    path: str
    stage: str
    segment_index: int | None
    error: str


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The figures of one ``run``, as ``vadpack run`` prints them. Counts are of the whole archive
    unless they say otherwise; they are the same counts ``vadpack status`` and the log lines give.

    Attributes:
        stages_run: the stages this run ran (the others were up to date).
        wall_s: seconds the run took.
        output_dir: the folder of the output tables.
        dtype: the asr precision (``float32``, ``bfloat16``, ``float16``).
        files: input files listed by scan (the rows of the recordings table).
        failed_inputs: input files that produced no document (unreadable, not audio, ...).
        audio_h: hours of audio the recordings hold.
        segments: speech segments of the archive (the rows of ``segments.parquet``).
        failed_segments: segments asr could not decode (rows of ``failures.parquet`` from asr).
        failed_speakers: recordings the speakers stage could not label.
        batches: batches packed in this run for decoding (0 when neither pack nor asr ran).
        padding_efficiency: real frames / padded frames of those batches; None without batches.
        decoded_segments: segments decoded in this run.
        decoded_audio_s: seconds of speech decoded in this run.
        reused_segments: segments whose transcript was reused from the store (``segments`` minus
            ``decoded_segments``).
        xrt: decoded audio seconds per wall second; None when nothing was decoded.
        budget_s: the packer's budget, in padded seconds per batch, when pack ran.
        stage_wall_s: seconds per stage that ran.
        asr: the asr stage's own figures (``decoding``: batches, OOM splits, peak memory, ...) when it ran.
        speakers: the speakers stage's own figures when it ran and was enabled.
        failures: the first failures (at most 10), each with its reason.
        n_failures: rows of ``failures.parquet``.
        failures_path: where the failures are, when there are any.
        pcm_cache_bytes: bytes of the decoded-audio cache after the run, when they are past
            ``vad.pcm_limit_gb`` (None below it, where the summary says nothing of the cache).
        keep_pcm: ``vad.keep_pcm`` as the run had it (``true``, ``false`` or ``auto``).
        pcm_limit_gb: ``vad.pcm_limit_gb`` as the run had it.
    """

    stages_run: tuple[str, ...] = ()
    wall_s: float = 0.0
    output_dir: str = ""
    dtype: str = "float32"
    files: int = 0
    failed_inputs: int = 0
    audio_h: float = 0.0
    segments: int = 0
    failed_segments: int = 0
    failed_speakers: int = 0
    batches: int = 0
    padding_efficiency: float | None = None
    decoded_segments: int = 0
    decoded_audio_s: float = 0.0
    reused_segments: int = 0
    xrt: float | None = None
    budget_s: float | None = None
    stage_wall_s: Mapping[str, float] = field(default_factory=dict)
    asr: AsrStageSummary | None = None
    speakers: SpeakersStageSummary | None = None
    failures: tuple[FailureRow, ...] = ()
    n_failures: int = 0
    failures_path: str | None = None
    pcm_cache_bytes: int | None = None
    keep_pcm: str = "auto"
    pcm_limit_gb: float = 100.0

    @property
    def failed(self) -> int:
        """Inputs, segments and speaker labels that did not make it (see ``failures.parquet``)."""
        return self.failed_inputs + self.failed_segments + self.failed_speakers

    def __getitem__(self, key: str) -> Any:
        """``summary["segments"]``, as in vadpack 0.2, where the summary was a dict."""
        if key in _FIELDS:
            return getattr(self, key)
        if key.endswith("_s") and key[:-2] in self.stage_wall_s:
            return self.stage_wall_s[key[:-2]]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``summary.get(key, default)``: the default also where the figure is None (not measured)."""
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for JSON: a stage's figures as its manifest keeps them (its wall time included)."""
        out = asdict(self)
        for name, figures in (("asr", self.asr), ("speakers", self.speakers)):
            if figures is not None:
                values = {**figures.as_dict(), "wall_s": self.stage_wall_s.get(name, 0.0)}
                out[name] = {k: v for k, v in values.items() if isinstance(v, (int, float, str))}
        return out


_FIELDS = frozenset(f.name for f in fields(RunSummary))


def run_summary(cfg: Config, results: dict[str, StageResult], wall_s: float) -> RunSummary:
    """Figures of the whole run (also for stages skipped as up to date)."""
    work = WorkDir(cfg.work_path)
    recs = _read(work.recordings, RECORDINGS)
    vad = _read(work.vad_recordings, VAD_RECORDINGS)
    failures = _read_output(cfg.output_path, "failures", FAILURES)
    s: dict[str, Any] = {"stages_run": tuple(results), "wall_s": wall_s, "output_dir": str(cfg.output_path),
                         "dtype": cfg.asr.dtype, "files": recs.num_rows if recs is not None else 0}
    failed = 0
    if recs is not None:
        failed += pc.sum(pc.not_equal(recs["status"], "ok")).as_py() or 0
    if vad is not None:
        failed += pc.sum(pc.not_equal(vad["status"], "ok")).as_py() or 0
        s["audio_h"] = (pc.sum(vad["n_samples"]).as_py() or 0) / SAMPLE_RATE / 3600
        s["segments"] = pc.sum(vad["n_segments"]).as_py() or 0
    s.update(failed_inputs=failed, failed_segments=_failures_of(failures, "asr"),
             failed_speakers=_failures_of(failures, "speakers"))
    if "pack" in results or "asr" in results:  # an up-to-date run packed nothing: no earlier run's batches
        s.update(_batch_figures(_read(work.batches, BATCHES)))
    # Nothing decoded unless asr ran: every segment's transcript then came from the store.
    s.update(decoded_segments=0, decoded_audio_s=0.0, reused_segments=s.get("segments", 0))
    s["stage_wall_s"] = {stage: r.wall_s for stage, r in results.items()}
    for r in results.values():
        if isinstance(r.summary, SpeakersStageSummary) and r.summary.enabled:
            s["speakers"] = r.summary
        if isinstance(r.summary, AsrStageSummary):
            s["asr"] = r.summary
            s["decoded_segments"] = r.summary.decoded_segments
            s["decoded_audio_s"] = r.summary.decoded_audio_s
            s["reused_segments"] = max(0, s.get("segments", 0) - s["decoded_segments"])
        if isinstance(r.summary, PackSummary):
            s["budget_s"] = r.summary.budget_s
    if s["decoded_audio_s"] and wall_s > 0:
        # Only what was decoded counts: audio whose transcript came from the store cost nothing here.
        s["xrt"] = s["decoded_audio_s"] / wall_s
    s.update(failure_rows(failures, cfg.output_path / "failures.parquet"))
    s.update(pcm_cache_bytes=pcm_over_limit(cfg), keep_pcm=str(cfg.vad.keep_pcm).lower(),
             pcm_limit_gb=cfg.vad.pcm_limit_gb)
    return RunSummary(**s)


def _batch_figures(batches: Any) -> dict[str, Any]:
    if batches is None or batches.num_rows == 0:
        return {"batches": 0}
    padded = pc.sum(batches["padded_frames"]).as_py() or 0
    real = pc.sum(batches["real_frames"]).as_py() or 0
    return {"batches": batches.num_rows, "padding_efficiency": real / padded if padded else None}


def _failures_of(failures, stage: str) -> int:
    """Rows of ``failures.parquet`` (or None) of one stage."""
    return (pc.sum(pc.equal(failures["stage"], stage)).as_py() or 0) if failures is not None else 0


def failure_rows(failures: Any, path: Path, show: int = FAILURES_SHOWN) -> dict[str, Any]:
    """The first ``show`` failures (path, stage, segment, reason), how many there are, and where."""
    if failures is None or failures.num_rows == 0:
        return {"failures": (), "n_failures": 0}
    rows = failures.sort_by([("path", "ascending"), ("segment_index", "ascending")]).slice(0, show)
    shown = tuple(FailureRow(r["path"], r["stage"], r["segment_index"], r["error"]) for r in rows.to_pylist())
    return {"failures": shown, "n_failures": failures.num_rows, "failures_path": str(path)}


def _read(path: Path, schema):
    return read_table(path, schema) if path.exists() else None


def _read_output(output_dir: Path, name: str, schema):
    """A public table as of the last complete stitch (the parts its manifest lists), or None."""
    from vadpack.core.dataset import read_dataset

    try:
        return read_dataset(output_dir, name, schema)
    except FileNotFoundError:
        return None


def print_summary(s: RunSummary) -> None:
    """The run's figures, and the inputs that failed with their reasons (the first few)."""
    efficiency = f"  padding efficiency {s.padding_efficiency:.3f}" if s.batches and s.padding_efficiency else ""
    lines = [
        f"files          {s.files}  (failed: {s.failed_inputs})",
        f"audio          {s.audio_h:.3f} h",
        f"segments       {s.segments}  (failed in asr: {s.failed_segments})",
        f"batches        {s.batches}{efficiency}",
        f"wall           {s.wall_s:.1f} s  ({', '.join(s.stages_run) or 'all stages up to date'})",
    ]
    if s.stages_run:
        lines.append(f"decoded        {s.decoded_segments} segments, {s.decoded_audio_s:.0f} s of audio  "
                     f"(reused from the store: {s.reused_segments})")
    if s.speakers is not None:
        sp = s.speakers
        speed = f", {sp.embed_xrt:.0f}x real time" if sp.embed_xrt else ""
        lines.append(f"speakers       {sp.labelled_recordings} recordings labelled{speed}  "
                     f"(from the store: {sp.reused_recordings})")
    if s.failed_speakers:
        lines.append(f"               {s.failed_speakers} speaker failures (see failures.parquet)")
    if s.xrt is not None:
        lines.append(f"speed          {s.xrt:.0f}x real time (decoded audio / wall time)")
    if s.budget_s is not None:
        lines.append(f"budget         {s.budget_s:.0f} padded s per batch")
    if s.dtype != "float32":
        lines.append(f"precision      {precision_note(s.dtype)}")
    if s.asr is not None and s.asr.decoding.batches:
        lines.append(f"batching       {batching_note(s.asr.decoding)}")
    lines.append(f"output         {s.output_dir}")
    if s.pcm_cache_bytes is not None:
        lines.append(f"pcm cache      {pcm_cache_note(s)}")
    lines += failure_lines(s)
    print("\n".join(lines))


def pcm_cache_note(s: RunSummary) -> str:
    """What the summary says of a decoded-audio cache past ``vad.pcm_limit_gb``."""
    n = s.pcm_cache_bytes or 0
    size = f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
    hours = n / (2 * SAMPLE_RATE * 3600)
    left = "" if s.keep_pcm == "true" else ", all of it unfinished recordings"
    return (f"{size} = {hours:.1f} h of audio (vad.keep_pcm: {s.keep_pcm}{left}), past vad.pcm_limit_gb: "
            f"{s.pcm_limit_gb:g}; keep_pcm: auto or false drops finished recordings' PCM, decoded again "
            "only when a run needs it (10-50 s per audio hour and core)")


def precision_note(dtype: str) -> str:
    """One line on what a half precision costs in exactness, with its measured agreement."""
    from vadpack.asr.config import HALF_PRECISION_AGREEMENT

    m = HALF_PRECISION_AGREEMENT[dtype]
    return (f"{dtype}: results may differ from float32 and between batchings (measured: "
            f"{m.token_agreement:.1%} token agreement with float32, {m.tokens_equal_fp32:.0%} of segments "
            f"identical, {m.batch_invariant:.0%} the same in every batching; bench/precision.py)")


def batching_note(asr: AsrSummary) -> str:
    """Whether this run's segments decoded bit-identically to themselves alone, and what the CPU probe saw."""
    seen = f" ({asr.row_probe})" if asr.row_probe else ""
    if asr.batch_invariant:
        return f"each segment bit-identical to itself alone{seen}"
    return f"results agree with a segment alone up to rounding (device {asr.device}){seen}"


def failure_lines(s: RunSummary) -> list[str]:
    """``failed ...`` lines: each failed input (or segment) with its reason, then how many more."""
    if not s.failures:
        return []
    lines = [f"failed         {s.n_failures} (every one with its reason in {s.failures_path}):"]
    for f in s.failures:
        where = f.stage + (f", segment {f.segment_index}" if f.segment_index is not None else "")
        lines.append(f"  {f.path} ({where}): {f.error}")
    if s.n_failures > len(s.failures):
        lines.append(f"  ... and {s.n_failures - len(s.failures)} more")
    return lines
