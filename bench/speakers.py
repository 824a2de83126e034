"""Benchmark the speakers stage: diarization error rate on human-labelled recordings, and speed.

Every recording of ../shared/data/real with a human RTTM: VoxConverse ``aepyx`` (8 kHz, 4 speakers),
the pyannote sample (a 2-party call) and the four AMI excerpts (with their UEM). For each:

- ``der``: the stage at the default SpeakersConfig on the pipeline's own VAD segments
  (``vad.stage.segment_recording(pcm, VadConfig())`` on the 16 kHz int16 samples);
- ``oracle_vad_der``: the same on the human speech regions (the union of the RTTM turns), through
  the stage's ``--regions`` (so with ``trim``, the default, segmentation-3.0 cuts them too);
- ``oracle_given_der``: the human speech regions taken as they are (``speakers.regions: vad``): the
  given regions are the truth, so this is the clustering's own error, and it is the issue's
  "with human speech regions" figure;
- ``one_speaker_der``: the baseline that calls every VAD segment one speaker (and its oracle twin);
- ``loo_der``: leave-one-out: the clustering settings that give the lowest mean DER on the *other*
  files (a grid over ``threshold`` x ``merge_similarity`` for ahc, ``pval`` x ``min_cluster_windows``
  x ``boundary`` for spectral; ``loo_params`` the point chosen), applied to this file; ``oracle_vad_loo_der``
  the same on the human speech regions. Their means are what to expect on new audio: the defaults
  were chosen partly on these files;
- ``speakers_ref`` / ``speakers_hyp``: the speaker counts (``oracle_vad_speakers_hyp`` /
  ``oracle_given_speakers_hyp`` with the human regions; ``*_speaker_count_mae`` their mean errors).

DER is pyannote.metrics' ``DiarizationErrorRate(collar=0.5, skip_overlap=True)``: 0.25 s forgiven on
each side of a reference boundary, overlapped speech not scored. ``embed_xrt`` is speech seconds per
wall second of the whole stage (audio reading, features, embeddings, clustering) once the model is
loaded, with the configured threads (1 by default). One-voice recordings (LibriVox, JFK,
LibriSpeech, AISHELL) report how many speakers they get (``single_voice_speakers``, should be 1).

``embed_xrt_per_core`` divides it by the torch threads. ``der`` and ``pooled_der`` are with vadpack's
own VAD, ``oracle_vad_*`` and ``oracle_given_*`` with the human speech regions.

``--regions`` sets ``speakers.regions`` for every run above (own VAD and human regions alike): ``auto``
(the default: ``trim`` with the segmentation-3.0 weights, else ``vad``), ``vad``, ``trim`` (vad's spans
cut to segmentation-3.0 speech) or ``segmentation`` (only windows in that speech embedded).
``--human-regions`` picks the human-regions runs: ``both`` (default), ``given`` (only
``oracle_given_*``) or ``stage`` (only ``oracle_vad_*``). ``--collar 0 --score-overlap`` scores the
strict way (no collar, overlapped speech scored).

Usage: .venv/bin/python bench/speakers.py [--backend auto] [--clustering auto] [--device auto] [--no-loo]
       [--regions auto] [--human-regions both] [--collar 0.5] [--score-overlap] [--set KEY=VALUE ...]
(``auto``: CAM++ with spectral clustering when ``make speaker-models`` has run, else resemblyzer)
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vadpack.core.cache import SAMPLE_RATE, pcm_path  # noqa: E402
from vadpack.speakers.config import REGIONS, SpeakersConfig  # noqa: E402
from vadpack.speakers.embed import load_embedder  # noqa: E402
from vadpack.speakers.segmentation import load_segmentation  # noqa: E402
from vadpack.speakers.stage import run_speakers  # noqa: E402
from vadpack.vad.config import VadConfig  # noqa: E402
from vadpack.vad.stage import segment_recording  # noqa: E402

from tests.support.audio import decode_int16  # noqa: E402

REAL_DATA = Path(os.environ.get("VADPACK_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
AMI = "en_ami_excerpts_pyannote"
FILES = {  # name -> (audio, rttm, uem or None)
    "aepyx": ("en_voxconverse_aepyx_8k/aepyx_8k.wav", "en_voxconverse_aepyx_8k/aepyx.rttm", None),
    "sample": ("en_pyannote_sample/sample.wav", "en_pyannote_sample/sample.rttm", None),
    **{name: (f"{AMI}/{name}.wav", f"{AMI}/debug.{part}.rttm", f"{AMI}/debug.{part}.uem")
       for name, part in (("tst00", "test"), ("tst01", "test"), ("dev00", "development"), ("dev01", "development"))},
}
ONE_VOICE = {
    "librivox": sorted(f"en_pocketsphinx_librivox/{p.name}"
                       for p in (REAL_DATA / "en_pocketsphinx_librivox").glob("*.wav")),
    "jfk": ["short_refs/jfk.flac"], "librispeech": ["short_refs/librispeech-1995-1837-0001.wav"],
    "aishell": ["short_refs/aishell-BAC009S0724W0121.wav"],
}
SCORING = {"collar": 0.5, "skip_overlap": True}  # --collar / --score-overlap change it
# Leave-one-out grids per clustering: (keys, points).
GRIDS = {"ahc": (("threshold", "merge_similarity"),
                 [(t, m) for t in (0.9, 1.0, 1.1, 1.2) for m in (0.8, 0.85, 0.88, 0.9, 0.95, 1.01)]),
         "spectral": (("pval", "min_cluster_windows", "boundary"),
                      [(p, k, b) for p in (0.006, 0.012, 0.02, 0.03) for k in (2, 4, 6, 8)
                       for b in ("midpoint", "quietest")])}


def decode(paths: list[str]) -> np.ndarray:
    return np.concatenate([decode_int16(str(REAL_DATA / p)) for p in paths])


def read_rttm(path: Path, name: str) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER" and f[1] == name:
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return turns


def read_uem(path: Path | None, name: str, duration_s: float) -> list[tuple[float, float]]:
    if path is None:
        return [(0.0, duration_s)]
    return [(float(f[2]), float(f[3])) for f in (line.split() for line in path.read_text().splitlines())
            if f and f[0] == name]


def union_samples(turns: list[tuple[float, float, str]]) -> list[tuple[int, int]]:
    """The human speech regions: the union of the RTTM turns, in samples."""
    out: list[list[int]] = []
    for s, e in sorted((round(s * SAMPLE_RATE), round(e * SAMPLE_RATE)) for s, e, _ in turns):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def segments_table(regions: dict[str, list[tuple[int, int]]]) -> pa.Table:
    """A segments table as the vad stage writes it; each file's name is its content id here."""
    rows = [{"recording_id": rid, "segment_index": i, "start_sample": s, "end_sample": e, "content_id": rid}
            for rid, spans in regions.items() for i, (s, e) in enumerate(spans)]
    return pa.Table.from_pylist(rows)


class MemoEmbedder:
    """Bench-only: remembers features and embeddings by audio content, so the grid reclusters for free."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.device = inner, inner.name, inner.dim, inner.device
        self.feats: dict[bytes, np.ndarray] = {}
        self.embs: dict[bytes, np.ndarray] = {}

    def features(self, audio: np.ndarray) -> np.ndarray:
        key = hashlib.sha1(audio.tobytes()).digest()
        if key not in self.feats:
            self.feats[key] = self.inner.features(audio)
        return self.feats[key]

    def embed(self, feats: list[np.ndarray]) -> np.ndarray:
        keys = [hashlib.sha1(f.tobytes()).digest() for f in feats]
        todo = [i for i, k in enumerate(keys) if k not in self.embs]
        if todo:
            for i, row in zip(todo, self.inner.embed([feats[i] for i in todo])):
                self.embs[keys[i]] = row
        return np.stack([self.embs[k] for k in keys])

    def embed_segment(self, feats: np.ndarray, frames: list[tuple[int, int]]) -> np.ndarray:
        key = hashlib.sha1(feats.tobytes() + repr(frames).encode()).digest()
        if key not in self.embs:
            self.embs[key] = self.inner.embed_segment(feats, frames)
        return self.embs[key]


class MemoSegmenter:
    """Bench-only: remembers the segmentation model's outputs by input, so the grid re-runs it for free."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.outputs: dict[bytes, object] = {}

    def __call__(self, x):
        key = hashlib.sha1(x.numpy().tobytes()).digest()
        if key not in self.outputs:
            self.outputs[key] = self.inner(x)
        return self.outputs[key]


def der(reference: list, spans: pa.Table, rid: str, uem: list[tuple[float, float]]) -> tuple[float, float]:
    """(error seconds, scored reference seconds) of one file; their ratio is its DER."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    ref, hyp = Annotation(), Annotation()
    for i, (s, e, spk) in enumerate(reference):
        ref[Segment(s, e), i] = spk
    rows = spans.filter(pa.compute.equal(spans["content_id"], rid))
    for i, (s, e, spk) in enumerate(zip(*(rows[c].to_pylist() for c in ("start_sample", "end_sample", "speaker")))):
        hyp[Segment(s / SAMPLE_RATE, e / SAMPLE_RATE), i] = spk
    metric = DiarizationErrorRate(**SCORING)
    detail = metric(ref, hyp, uem=Timeline([Segment(s, e) for s, e in uem]), detailed=True)
    error = detail["confusion"] + detail["missed detection"] + detail["false alarm"]
    return float(error), float(detail["total"])


def one_speaker(segments: pa.Table) -> pa.Table:
    return pa.table({"content_id": segments["content_id"], "start_sample": segments["start_sample"],
                     "end_sample": segments["end_sample"], "speaker": ["S1"] * segments.num_rows})


def per_file_der(spans: pa.Table, refs: dict, uems: dict) -> dict[str, float]:
    return {name: _ratio(der(refs[name], spans, name, uems[name])) for name in FILES}


def pooled_der(spans: pa.Table, refs: dict, uems: dict) -> float:
    """Errors of all files over their reference time together: long files weigh more, and a file with
    little reference speech cannot dominate as it does in the mean."""
    parts = [der(refs[name], spans, name, uems[name]) for name in FILES]
    return sum(e for e, _ in parts) / sum(t for _, t in parts)


def _ratio(error_total: tuple[float, float]) -> float:
    return error_total[0] / error_total[1] if error_total[1] else 0.0


def leave_one_out(grid_ders: dict[tuple, dict[str, float]]) -> dict[str, tuple[tuple, float]]:
    """Per file: the grid point with the lowest mean DER on the other files, and its DER on this one."""
    out = {}
    for name in FILES:
        others = {g: np.mean([d for f, d in ders.items() if f != name]) for g, ders in grid_ders.items()}
        best = min(others, key=lambda g: (others[g], g))
        out[name] = (best, grid_ders[best][name])
    return out


def prepare(cache: Path) -> tuple[dict, dict, dict, dict]:
    """Decode every labelled file into the PCM cache; its reference, UEM, VAD and oracle regions."""
    refs, uems, vad, oracle = {}, {}, {}, {}
    for name, (audio, rttm, uem) in FILES.items():
        pcm = decode([audio])
        pcm.astype("<i2").tofile(pcm_path(cache, name))
        refs[name] = read_rttm(REAL_DATA / rttm, name)
        uems[name] = read_uem(REAL_DATA / uem if uem else None, name, len(pcm) / SAMPLE_RATE)
        vad[name] = segment_recording(pcm, VadConfig())
        oracle[name] = union_samples(refs[name])
    return refs, uems, vad, oracle


def one_voice_counts(cache: Path, cfg: SpeakersConfig, models: tuple) -> dict[str, int]:
    regions = {}
    for name, paths in ONE_VOICE.items():
        pcm = decode(paths)
        pcm.astype("<i2").tofile(pcm_path(cache, name))
        regions[name] = segment_recording(pcm, VadConfig())
    return run_speakers(segments_table(regions), cache, cfg, False, *models).summary["speakers_per_recording"]


def device_name(device: str) -> str:
    """``cpu xN`` or the CUDA device's name, for the JSON ``device`` key."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu x{os.cpu_count()}"


def grid_loo(regions: dict, cache: Path, cfg: SpeakersConfig, models: tuple, refs: dict, uems: dict) -> dict:
    """Leave-one-out over the clustering's grid (``GRIDS``: ahc threshold x merge_similarity, spectral
    pval x min_cluster_windows x boundary) on these speech regions."""
    table = segments_table(regions)
    keys, points = GRIDS[cfg.resolved_clustering]
    grid = {p: per_file_der(run_speakers(table, cache, replace(cfg, **dict(zip(keys, p))), False, *models).spans,
                            refs, uems) for p in points}
    return leave_one_out(grid)


HUMAN_REGIONS = {"stage": ("oracle_vad",), "given": ("oracle_given",), "both": ("oracle_vad", "oracle_given")}


def measure(cfg: SpeakersConfig, cache: Path, with_loo: bool, human: str = "both") -> dict:
    """Every figure of the benchmark, per file and overall, on one PCM cache folder. ``human`` picks
    the human-regions runs (``HUMAN_REGIONS``): through the stage's regions (``oracle_vad``), as
    given (``oracle_given``: ``speakers.regions: vad``), or both."""
    refs, uems, vad, oracle = prepare(cache)
    embedder = MemoEmbedder(load_embedder(cfg))
    real = run_speakers(segments_table(vad), cache, cfg, False, embedder)  # first: the timed run
    models = (embedder, MemoSegmenter(load_segmentation()) if cfg.resolved_regions != "vad" else None)
    human_cfgs = {key: cfg if key == "oracle_vad" else replace(cfg, regions="vad") for key in HUMAN_REGIONS[human]}
    human_runs = {key: run_speakers(segments_table(oracle), cache, c, False, *models) for key, c in human_cfgs.items()}
    ders = {"der": per_file_der(real.spans, refs, uems),
            **{f"{key}_der": per_file_der(r.spans, refs, uems) for key, r in human_runs.items()},
            "one_speaker_der": per_file_der(one_speaker(segments_table(vad)), refs, uems),
            "oracle_one_speaker_der": per_file_der(one_speaker(segments_table(oracle)), refs, uems)}
    pooled = {"pooled_der": pooled_der(real.spans, refs, uems),
              "one_speaker_pooled_der": pooled_der(one_speaker(segments_table(vad)), refs, uems),
              **{f"{key}_pooled_der": pooled_der(r.spans, refs, uems) for key, r in human_runs.items()}}
    loo = {"loo": grid_loo(vad, cache, cfg, models, refs, uems),
           **{f"{key}_loo": grid_loo(oracle, cache, c, models, refs, uems) for key, c in human_cfgs.items()}
           } if with_loo else {}
    counts = real.summary["speakers_per_recording"]
    human_counts = {key: r.summary["speakers_per_recording"] for key, r in human_runs.items()}
    files = [{"file": name, "speakers_ref": len({s for _, _, s in refs[name]}), "speakers_hyp": counts.get(name, 0),
              **{f"{key}_speakers_hyp": c.get(name, 0) for key, c in human_counts.items()},
              **{key: round(d[name], 4) for key, d in ders.items()},
              **{f"{key}_der": round(out[name][1], 4) for key, out in loo.items()},
              **{f"{key}_params": list(out[name][0]) for key, out in loo.items()}} for name in FILES]
    return {"files": files, "ders": ders, "pooled": pooled, "loo": loo, "summary": real.summary,
            "human": list(human_runs), "singles": one_voice_counts(cache, cfg, models)}


def report(cfg: SpeakersConfig, m: dict) -> dict:
    """The benchmark's JSON object (the keys ../shared/BENCH.md names, and more)."""
    mean = {key: round(float(np.mean(list(d.values()))), 4) for key, d in m["ders"].items()}
    files = m["files"]
    return {
        "mean_der": mean["der"], "one_speaker_mean_der": mean["one_speaker_der"],
        **{f"{key}_mean_der": mean[f"{key}_der"] for key in m["human"]},
        "oracle_one_speaker_mean_der": mean["oracle_one_speaker_der"],
        **{f"{key}_mean_der": round(float(np.mean([d for _, d in out.values()])), 4)
           for key, out in m["loo"].items()},
        **{k: round(v, 4) for k, v in m["pooled"].items()},
        "speaker_count_mae": count_mae(files, "speakers_hyp"),
        **{f"{key}_speaker_count_mae": count_mae(files, f"{key}_speakers_hyp") for key in m["human"]},
        "single_voice_speakers": m["singles"], "embed_xrt": round(m["summary"]["embed_xrt"], 1),
        "embed_xrt_per_core": round(m["summary"]["embed_xrt"] / (cfg.threads or os.cpu_count() or 1), 1),
        "speech_s": round(m["summary"]["audio_s"], 1), "device": device_name(m["summary"]["device"]),
        "backend": m["summary"]["backend"], "threads": cfg.threads, "window_s": cfg.resolved_window_s,
        "hop_s": cfg.resolved_hop_s, "segmentation_hop_s": cfg.segmentation_hop_s,
        "clustering": cfg.resolved_clustering,
        "threshold": cfg.threshold, "merge_similarity": cfg.merge_similarity, "pval": cfg.pval,
        "min_cluster_windows": cfg.resolved_min_cluster_windows,
        "loo_grid": list(GRIDS[cfg.resolved_clustering][0]), "regions": cfg.resolved_regions,
        "collar": SCORING["collar"], "overlap_scored": not SCORING["skip_overlap"],
        "date": datetime.date.today().isoformat(), "files": files,
    }


def settings(pairs: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs as SpeakersConfig keywords, each value read as YAML (1.5, null, true)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE, e.g. --set hop_s=1.5")
        out[key.strip()] = yaml.safe_load(value)
    return out


def count_mae(files: list[dict], key: str) -> float:
    """The mean absolute error of the speaker counts ``key`` of the per-file rows."""
    return round(float(np.mean([abs(f[key] - f["speakers_ref"]) for f in files])), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="auto", choices=("auto", "resemblyzer", "campp"))
    parser.add_argument("--clustering", default="auto", choices=("auto", "ahc", "spectral"))
    parser.add_argument("--model", default="", help="speakers.model (campp: hub id or folder)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-loo", action="store_true", help="skip the leave-one-out grids (a quick run)")
    parser.add_argument("--regions", default="auto", choices=REGIONS,
                        help="speakers.regions: auto (trim with the segmentation weights, else vad), vad (every "
                             "window), trim (vad's spans cut to segmentation-3.0 speech) or segmentation (only "
                             "windows in that speech embedded)")
    parser.add_argument("--human-regions", default="both", choices=tuple(HUMAN_REGIONS),
                        help="the human-regions runs: stage (through --regions: oracle_vad_*), given (taken as they "
                             "are, speakers.regions vad: oracle_given_*, the issue's figure) or both")
    parser.add_argument("--collar", type=float, default=0.5, help="scoring collar in seconds (0.5: ±0.25 s)")
    parser.add_argument("--score-overlap", action="store_true", help="score overlapped speech too")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other speakers.KEY (YAML value), e.g. --set hop_s=1.5; repeatable")
    args = parser.parse_args()
    SCORING.update(collar=args.collar, skip_overlap=not args.score_overlap)
    warnings.simplefilter("ignore", DeprecationWarning)
    cfg = SpeakersConfig(enabled=True, backend=args.backend, model=args.model, clustering=args.clustering,
                         device=args.device, regions=args.regions, **settings(args.set))
    with tempfile.TemporaryDirectory() as tmp:
        result = report(cfg, measure(cfg, Path(tmp), with_loo=not args.no_loo, human=args.human_regions))
    for f in result["files"]:
        print(json.dumps(f))
    print(json.dumps(result))


if __name__ == "__main__":
    from vadpack.pipeline.cli import exit_process

    main()
    exit_process(0)  # skips the interpreter teardown in which pyarrow's threads can abort
