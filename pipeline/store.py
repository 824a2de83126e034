"""Store bookkeeping: where the transcript store of a config is, what it holds, and a model's identity.

The store (``core.partstore``) lives in ``work_dir/store/asr-<key>/``: part files of TRANSCRIPTS rows,
one per decoded span (content_id, start_sample, end_sample), added to by every asr run and never
rewritten except by ``vadpack prune``. The key is the asr result key: the model's identity (a hub
id, or a content hash of a local model folder's files) and the asr settings that change results. A
new model or setting is a new folder; the old one stays until pruned, so switching back costs nothing.

pack packs only the spans without an ``ok`` row in the current folder, asr decodes only those, and
stitch reads every segment's result from here, so an archive that grows or is renamed costs only its
new audio.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.asr.config import RESULTS_VERSION, AsrConfig, is_local_model
from vadpack.core.atomic import write_text_atomic
from vadpack.core.configtools import result_hash, stable_hash
from vadpack.core.fingerprint import file_content_id
from vadpack.core.partstore import TRANSCRIPT_KEY, PartStore, transcript_store
from vadpack.core.tables import SEGMENT_RESULTS
from vadpack.core.usercache import user_cache_dir
from vadpack.pipeline.workdir import WorkDir

MODEL_IDS_FILE = "model_ids.json"
log = logging.getLogger("vadpack.store")
_SPAN = list(TRANSCRIPT_KEY)


@dataclass(frozen=True, slots=True)
class ResultKey:
    """What a stored result (a transcript, a speaker label) depends on.

    Attributes:
        model_id: ``hub:<id>`` for a hub model, ``local:<hash of the files>`` for a folder or file.
        settings: the hash of the stage's settings that change results (the model key itself excluded).
    """

    model_id: str
    settings: str

    @property
    def digest(self) -> str:
        return stable_hash({"model": self.model_id, "settings": self.settings})


def asr_key(cfg: AsrConfig) -> ResultKey:
    """The result key of ``cfg``: its model's identity and its result settings."""
    return ResultKey(model_identity(cfg.model), settings_hash(cfg, results_version=RESULTS_VERSION))


def settings_hash(cfg: object, leave_out: tuple[str, ...] = (), **extra: object) -> str:
    """The hash of a stage config's settings that change results: neither its ``SPEED_ONLY`` keys nor
    ``model`` (the model counts by its identity, not by how it is named) nor ``leave_out``; ``extra``
    values join them (asr's ``results_version``: a fix that changes results makes old ones stale)."""
    return result_hash(cfg, leave_out=("model", *leave_out), **extra)


def asr_store(cfg: AsrConfig, work: WorkDir) -> PartStore:
    """The store of ``cfg``'s results (a lookup: nothing is created until a part is written)."""
    key = asr_key(cfg)
    label = json.dumps({"model": cfg.model, "model_id": key.model_id, "settings": key.settings}, indent=1)
    return transcript_store(work.store / f"asr-{key.digest}", label)


def model_identity(spec: str, cache_file: Path | None = None) -> str:
    """``hub:<id>`` for a hub id; for a local folder a hash of every file in it (names and bytes), for
    a single weights file a hash of its bytes.

    Hashing a large model takes seconds (1.3 s for Paraformer-large's 0.9 GB here), so the result is
    cached against the files' sizes and modification times (rewriting the weights in place changes
    the identity) in ``cache_file``, by default ``model_ids.json`` in the user's cache folder
    (``core.usercache``): a model is hashed once, not once per work_dir. The cache is best effort:
    one that cannot be written costs a hash next time, and entries of folders that are gone are dropped.
    """
    if not is_local_model(spec):
        return f"hub:{spec}"
    path = Path(spec).expanduser().resolve()
    folder = path.parent if path.is_file() else path
    files = [path] if path.is_file() else sorted(p for p in folder.rglob("*")
                                                 if p.is_file() and not p.name.startswith("."))
    stamp = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    cache_file = Path(cache_file) if cache_file is not None else user_cache_dir() / MODEL_IDS_FILE
    cache = _read_json(cache_file)
    entry = cache.get(str(path))
    if entry and entry.get("stamp") == stamp:
        return entry["id"]
    model_id = "local:" + stable_hash([[name, file_content_id(folder / name)] for name, _, _ in stamp])
    cache = {key: value for key, value in cache.items() if Path(key).exists()}
    cache[str(path)] = {"stamp": stamp, "id": model_id}
    try:
        write_text_atomic(cache_file, json.dumps(cache, indent=1))
    except OSError as e:  # a read-only home: the identity is right, only the next run hashes again
        log.debug("model identity not cached in %s: %s", cache_file, e)
    return model_id


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# ---- reading the store --------------------------------------------------------------------------

def spans_of(segments: pa.Table) -> pa.Table:
    """The distinct spans (content_id, start_sample, end_sample) of a segments table."""
    spans = segments.select(_SPAN)
    return spans.group_by(_SPAN).aggregate([]).sort_by([(c, "ascending") for c in _SPAN])


def todo_spans(segments: pa.Table, store: PartStore) -> pa.Table:
    """The spans of ``segments`` that have no ``ok`` result in ``store``: what asr must decode."""
    spans = spans_of(segments)
    ok = store.done()
    if ok.num_rows == 0:
        return spans
    return spans.join(ok, keys=_SPAN, join_type="left anti").sort_by([(c, "ascending") for c in _SPAN])


def next_batch_id(store: PartStore) -> int:
    """One past the largest batch id in the store, so a new batch id never names an old batch."""
    ids = store.read(["batch_id"])["batch_id"]
    return int(pc.max(ids).as_py()) + 1 if len(ids) else 0


def segment_results(segments: pa.Table, store: PartStore) -> pa.Table:
    """Each segment's result from the store (``SEGMENT_RESULTS``), one row per segment.

    A span decoded more than once (a retried failure) counts by its current row (``PartStore``: an
    ``ok`` row before failures, then the latest). A segment the store has no row for is a failure that
    says so, never a silent gap.
    """
    rows = store.current()
    # Join on positions: Arrow's hash join does not carry list columns (the tokens).
    positions = rows.select(_SPAN).append_column("_pos", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    keyed = segments.select(["recording_id", "segment_index", *_SPAN]).join(positions, keys=_SPAN,
                                                                            join_type="left outer")
    keyed = keyed.sort_by([("recording_id", "ascending"), ("segment_index", "ascending")])
    pos = keyed["_pos"]
    found = rows.take(pc.fill_null(pos, 0)) if rows.num_rows else None
    missing = pc.is_null(pos)
    n = keyed.num_rows
    columns = {"recording_id": keyed["recording_id"], "segment_index": keyed["segment_index"]}
    for name in ("batch_id", "text", "tokens", "token_start_ms", "token_end_ms", "language", "emotion", "event"):
        field = SEGMENT_RESULTS.field(name)
        columns[name] = (pc.if_else(missing, pa.scalar(None, field.type), found[name]) if found is not None
                         else pa.nulls(n, field.type))
    status = found["status"] if found is not None else pa.nulls(n, pa.string())
    error = found["error"] if found is not None else pa.nulls(n, pa.string())
    columns["status"] = pc.if_else(missing, "failed", status)
    columns["error"] = pc.if_else(missing, "no result in the transcript store; rerun with --from asr", error)
    return pa.table(columns).cast(SEGMENT_RESULTS)
