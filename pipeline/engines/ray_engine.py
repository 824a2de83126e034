"""The Ray Data engine: the same stages, spread over a Ray cluster.

- vad: a CPU ``map`` over recordings; each task decodes one file into the PCM cache and segments it
  (the same ``vad.stage.process_recording`` the local engine runs, with the same resume sidecars).
- pack: on the driver (segment metadata is small).
- asr: ``map_batches`` over part groups with an actor pool; each actor starts as a local replica
  does (``asr.stage.start_decoder``) and writes whole part files, named as the local engine names
  them, so a restarted driver skips the parts already written and the tables come out identical.
  The driver hands each finished part on as it comes (fault point ``asr.part_received``).
- scan and stitch: on the driver, so the final tables are byte-for-byte the local engine's.

The work_dir (PCM cache, part files) and the model folder must be on storage every node can read
at the same path: a shared filesystem (NFS, Lustre, a FUSE-mounted bucket).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from vadpack.asr.config import AsrConfig
from vadpack.asr.types import AsrSummary
from vadpack.core.faults import fault_point
from vadpack.core.partstore import PartStore
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


@dataclass(frozen=True, slots=True)
class RayEngine:
    """The stages on a Ray cluster (``engine: ray``); the ``ray`` section says which and how.

    Attributes:
        ray_cfg: the cluster's address, CPUs, and the asr actors.
    """

    ray_cfg: RayConfig
    name: str = "ray"

    def vad_outcomes(self, refs: Sequence[RecordingRef], cache_dir: Path, vad_cfg: VadConfig,
                     force: bool) -> Iterator[VadOutcome]:
        return ray_vad(refs, cache_dir, vad_cfg, self.ray_cfg, force=force)

    def decode(self, batches: pa.Table, pcm_dir: Path, store_dir: PartStore | Path, asr_cfg: AsrConfig) -> AsrSummary:
        from vadpack.asr.stage import plan_work

        groups, already = plan_work(batches, store_dir, asr_cfg.batches_per_part)
        return replace(ray_asr(groups, pcm_dir, asr_cfg, self.ray_cfg), already_stored=already)


def ray_asr(groups: list, cache_dir: Path, cfg: AsrConfig, ray_cfg: RayConfig) -> AsrSummary:
    """Decode the part groups (spans the store lacks) with a pool of model actors.

    Returns:
        The actors' figures merged as the local replicas' are (``asr.stage.merge_summaries``), with
        ``wall_s`` the decoding window: from the first group an actor started to the last one it
        finished, without Ray's start-up and the actors' model loading.
    """
    from vadpack.asr.stage import Layout, merge_summaries  # the stage's entry point

    todo = [i for i, g in enumerate(groups) if not g.path.exists()]
    if not todo:
        return AsrSummary(model=cfg.model)
    ray = ray_init(ray_cfg)
    ds = ray.data.from_items([{"group": i} for i in todo], override_num_blocks=len(todo))
    ds = ds.map_batches(_AsrActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=ray_cfg.concurrency),
                        num_gpus=ray_cfg.num_gpus_per_actor or None,
                        fn_constructor_kwargs={"groups": groups, "cache_dir": str(cache_dir), "cfg": cfg})
    latest: dict[str, dict[str, Any]] = {}  # each actor's figures so far, by actor
    t_start, t_end = float("inf"), 0.0
    for row in ds.iter_rows():  # as the parts are written: a Ctrl-C here keeps every finished one
        fault_point("asr.part_received")
        t_start, t_end = min(t_start, float(row["t_start"])), max(t_end, float(row["t_end"]))
        if row["n_groups"] > latest.get(row["actor"], {}).get("n_groups", 0):
            latest[row["actor"]] = row
    parts = [AsrSummary(**json.loads(r["summary"])) for r in latest.values()]
    layout = Layout(ray_cfg.concurrency, parts[0].threads_per_replica, tuple(p.device for p in parts))
    merged = merge_summaries(parts, t_end - t_start, layout, [])
    window_s = max(t_end - t_start, 1e-9)
    return replace(merged, wall_s=t_end - t_start, xrt=merged.audio_s / window_s)


class _AsrActor:
    """One decoding process of the pool: started as a local replica is, it writes whole part files.

    Each call returns the actor's figures so far; the driver keeps each actor's latest.
    """

    def __init__(self, groups: list, cache_dir: str, cfg: AsrConfig) -> None:
        from vadpack.asr.stage import start_decoder

        self.groups, self.cache_dir = groups, Path(cache_dir)
        self.actor, self.n_groups = uuid.uuid4().hex, 0
        self.decoder = start_decoder(cfg, lambda _msg: None)

    def __call__(self, batch: dict) -> dict:
        rows: dict[str, list] = {"actor": [], "n_groups": [], "summary": [], "t_start": [], "t_end": []}
        for gi in batch["group"]:
            t_start = time.time()
            self.decoder.decode_groups([self.groups[int(gi)]], self.cache_dir, progress=False)
            self.n_groups += 1
            for key, value in (("actor", self.actor), ("n_groups", self.n_groups),
                               ("summary", json.dumps(self.decoder.summary().as_dict())),
                               ("t_start", t_start), ("t_end", time.time())):
                rows[key].append(value)
        return {k: np.asarray(v) for k, v in rows.items()}
