"""The Ray Data engine: the same stages, spread over a Ray cluster.

- vad: a CPU ``map`` over recordings; each task decodes one file into the PCM cache and segments it
  (the same ``vad.stage.process_recording`` the local engine runs, with the same resume sidecars).
- pack: on the driver (segment metadata is small).
- asr: ``map_batches`` over part groups with an actor pool; each actor loads the model once and
  writes whole part files, named as the local engine names them, so a restarted driver skips the
  parts already written and the tables come out identical.
- scan and stitch: on the driver, so the final tables are byte-for-byte the local engine's.

The work_dir (PCM cache, part files) and the model folder must be on storage every node can read
at the same path: a shared filesystem (NFS, Lustre, a FUSE-mounted bucket).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from vadpack.asr.config import AsrConfig
from vadpack.core.types import RecordingRef, Segment
from vadpack.pipeline.config import RayConfig
from vadpack.vad.config import VadConfig
from vadpack.vad.types import VadOutcome

log = logging.getLogger("vadpack")


def ray_init(cfg: RayConfig):
    """Connect to the configured cluster, or start a local one; idempotent."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("engine: ray needs Ray Data; install the extra: pip install 'vadpack[ray]'") from e
    if not ray.is_initialized():
        ray.init(address=cfg.address, num_cpus=cfg.num_cpus if cfg.address is None else None,
                 include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def ray_vad(refs: Sequence[RecordingRef], cache_dir: Path, cfg: VadConfig, ray_cfg: RayConfig,
            force: bool = False) -> Iterator[VadOutcome]:
    """The vad stage as a Ray Data map over recordings; one outcome per recording."""
    if not refs:
        return
    ray = ray_init(ray_cfg)
    items = [{"recording_id": r.recording_id, "path": r.path, "content_id": r.content_id} for r in refs]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    n_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    ds = ds.map(_VadTask, fn_constructor_kwargs={"cache_dir": str(cache_dir), "cfg": cfg, "force": force},
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=n_cpus), num_cpus=1)
    for row in ds.iter_rows():
        rid = row["recording_id"]
        segments = tuple(Segment(rid, i, int(s), int(e)) for i, (s, e) in enumerate(zip(row["starts"],
                                                                                         row["ends"])))
        yield VadOutcome(rid, int(row["n_samples"]), segments, row["error"] or None, row["warning"] or None)


class _VadTask:
    def __init__(self, cache_dir: str, cfg: VadConfig, force: bool) -> None:
        self.cache_dir, self.cfg, self.force = Path(cache_dir), cfg, force

    def __call__(self, row: dict) -> dict:
        from vadpack.vad.stage import process_recording

        ref = RecordingRef(row["recording_id"], row["path"], row["content_id"])
        out = process_recording(ref, self.cache_dir, self.cfg, self.force)
        return {"recording_id": out.recording_id, "n_samples": out.n_samples,
                "starts": [s.start_sample for s in out.segments], "ends": [s.end_sample for s in out.segments],
                "error": out.error or "", "warning": out.warning or ""}


def ray_asr(groups: list, cache_dir: Path, cfg: AsrConfig, ray_cfg: RayConfig) -> dict:
    """Decode the part groups (spans the store lacks) with a pool of model actors; return summed figures."""
    todo = [i for i, g in enumerate(groups) if not g.path.exists()]
    if not todo:
        return {"parts_written": 0}
    ray = ray_init(ray_cfg)
    ds = ray.data.from_items([{"group": i} for i in todo], override_num_blocks=len(todo))
    ds = ds.map_batches(_AsrActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=ray_cfg.concurrency),
                        num_gpus=ray_cfg.num_gpus_per_actor or None,
                        fn_constructor_kwargs={"groups": groups, "cache_dir": str(cache_dir), "cfg": cfg})
    out = ds.to_pandas()
    audio_s = float(out["audio_s"].sum())
    return {"engine": "ray", "actors": ray_cfg.concurrency, "parts_written": len(out), "audio_s": audio_s,
            "model_s": float(out["model_s"].sum()), "segments": int(out["segments"].sum()),
            "failed_segments": int(out["failed"].sum()),
            # From the first group an actor started to the last one it finished: the decoding
            # itself, without Ray's start-up and the actors' model loading.
            "decode_window_s": float(out["t_end"].max() - out["t_start"].min())}


class _AsrActor:
    """Holds one loaded model; writes whole part files."""

    def __init__(self, groups: list, cache_dir: str, cfg: AsrConfig) -> None:
        from vadpack.asr.model import load_model

        self.groups, self.cache_dir = groups, Path(cache_dir)
        self.lm = load_model(cfg)
        self.cfg = replace(cfg, feature_workers=cfg.feature_workers_for(self.lm.device.type))

    def __call__(self, batch: dict) -> dict:
        from vadpack.asr.stage import Decoder

        rows = {"group": [], "audio_s": [], "model_s": [], "segments": [], "failed": [], "t_start": [], "t_end": []}
        for gi in batch["group"]:
            t_start = time.time()
            run = Decoder(self.lm, self.cfg, lambda _msg: None)
            run.decode_groups([self.groups[int(gi)]], self.cache_dir, progress=False)
            self.cfg = replace(self.cfg, warmup=False)  # once per actor is enough
            s = run.summary(0.0)
            for key, value in (("group", int(gi)), ("audio_s", s.audio_s), ("model_s", s.model_s),
                               ("segments", s.segments), ("failed", s.failed_segments), ("t_start", t_start),
                               ("t_end", time.time())):
                rows[key].append(value)
        return {k: np.asarray(v) for k, v in rows.items()}
