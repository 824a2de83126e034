"""The speaker store: each recording's speaker spans, keyed by its content and its segments.

The store (``core.partstore``) lives in ``work_dir/store/speakers-<key>/``: part files of ``SPEAKER_STORE`` rows, one
part per group of recordings a speakers run labelled, never rewritten except by ``vadpack prune``.
The key is the embedding model's identity (a hub id, or a content hash of the weights file or
folder) and the speakers settings that change labels (not device, batch sizes, threads, prefetch).

Clustering is per recording, so a recording's labels depend on its own audio and all of its speech
segments, and on nothing else: rows are keyed by ``(content_id, segments_digest)``, the digest being
a hash of the recording's segment list. A renamed or copied file is a hit; a file whose segments
changed (another vad setting) is labelled again.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.configtools import ConfigError, stable_hash
from vadpack.core.partstore import SPEAKER_KEY, PartStore, speaker_store
from vadpack.core.tables import SPEAKER_LABELS, SPEAKER_STORE
from vadpack.pipeline.store import ResultKey, model_identity, settings_hash
from vadpack.pipeline.workdir import WorkDir
from vadpack.speakers.config import SpeakersConfig

_KEY = list(SPEAKER_KEY)
MISSING = "no speaker labels in the store for this recording; rerun with --stage speakers"


def speakers_key(cfg: SpeakersConfig) -> ResultKey:
    """The result key of ``cfg``: its embedding model's identity and its label settings.

    Raises:
        ConfigError: the backend's extra is not installed (the message names it).
    """
    from vadpack.speakers.stage import weights_spec

    try:
        spec = weights_spec(cfg)
    except ImportError as e:
        raise ConfigError(f"speakers.enabled is true, but {e}") from e
    # speakers.regions is keyed as it resolves (auto follows the segmentation weights); vad stays out, so
    # stores written before the key existed stay valid
    resolved = replace(cfg, regions=cfg.resolved_regions)
    return ResultKey(model_identity(spec),
                     settings_hash(resolved, leave_out=("regions",) if resolved.regions == "vad" else ()))


def speakers_store(cfg: SpeakersConfig, work: WorkDir) -> PartStore:
    """The store of ``cfg``'s labels (a lookup: nothing is created until a part is written)."""
    key = speakers_key(cfg)
    label = json.dumps({"backend": cfg.backend, "model": cfg.model_name, "model_id": key.model_id,
                        "settings": key.settings}, indent=1)
    return speaker_store(work.store / f"speakers-{key.digest}", label)


def segments_digests(segments: pa.Table) -> pa.Table:
    """(content_id, segments_digest) per content of a vad segments table: a hash of its segment list."""
    spans = segments.select(["content_id", "start_sample", "end_sample"]).group_by(
        ["content_id", "start_sample", "end_sample"]).aggregate([])
    spans = spans.sort_by([("content_id", "ascending"), ("start_sample", "ascending")])
    ids = spans["content_id"].to_pylist()
    bounds = np.stack([spans["start_sample"].to_numpy(), spans["end_sample"].to_numpy()], axis=1) \
        if spans.num_rows else np.zeros((0, 2), np.int64)
    cuts = [0, *(i for i in range(1, len(ids)) if ids[i] != ids[i - 1]), len(ids)] if ids else [0]
    contents = [ids[lo] for lo in cuts[:-1]]
    digests = [stable_hash(bounds[lo:hi].tolist()) for lo, hi in zip(cuts[:-1], cuts[1:])]
    return pa.table({"content_id": pa.array(contents, pa.string()), "segments_digest": pa.array(digests, pa.string())})


def todo_segments(segments: pa.Table, store: PartStore) -> pa.Table:
    """The segments of the recordings whose content and segments have no labels in ``store``."""
    digests = segments_digests(segments)
    done = store.done()
    todo = digests.join(done, keys=_KEY, join_type="left anti") if done.num_rows else digests
    return segments.filter(pc.is_in(segments["content_id"], value_set=todo["content_id"].combine_chunks()))


def write_part(store: PartStore, results: pa.Table, digests: pa.Table) -> Path:
    """Add one ``SPEAKER_RESULTS`` table (whole contents) to the store as a new part file."""
    rows = results.join(digests, keys="content_id", join_type="left outer")
    return store.append(rows.select(SPEAKER_STORE.names).cast(SPEAKER_STORE))


def speaker_labels(segments: pa.Table, store: PartStore) -> pa.Table:
    """Each recording's speaker rows (``SPEAKER_LABELS``), sorted by recording and start.

    A recording with speech whose content and segments the store has no row for gets one failed
    row that says so, never a silent gap.
    """
    recordings = segments.select(["recording_id", "content_id"]).group_by(["recording_id", "content_id"]).aggregate([])
    keyed = recordings.join(segments_digests(segments), keys="content_id")
    rows = store.current()
    found = keyed.join(rows, keys=_KEY, join_type="inner")
    missing = keyed.join(rows.select(_KEY), keys=_KEY, join_type="left anti")
    n = missing.num_rows
    lost = pa.table({"recording_id": missing["recording_id"], "start_sample": pa.nulls(n, pa.int64()),
                     "end_sample": pa.nulls(n, pa.int64()), "speaker": pa.nulls(n, pa.string()),
                     "status": pa.array(["failed"] * n, pa.string()), "error": pa.array([MISSING] * n, pa.string())})
    table = pa.concat_tables([found.select(SPEAKER_LABELS.names).cast(SPEAKER_LABELS), lost.cast(SPEAKER_LABELS)])
    return table.sort_by([("recording_id", "ascending"), ("start_sample", "ascending")])
