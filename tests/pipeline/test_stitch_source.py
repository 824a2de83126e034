"""Stitch's store source: the speaker store is read through its index, only the parts that hold the
recordings being rebuilt."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from vadpack.core.partstore import speaker_store, transcript_store
from vadpack.core.tables import SPEAKER_STORE, VAD_SEGMENTS, to_table
from vadpack.pipeline.speaker_store import segments_digests
from vadpack.pipeline.stitch_source import StoreSource


def _segments(rows: list[tuple[str, str, int, int]]) -> pa.Table:
    """(recording, content, start, end) per segment."""
    index = [sum(1 for r in rows[:k] if r[0] == rows[k][0]) for k in range(len(rows))]
    return to_table({"recording_id": [r[0] for r in rows], "segment_index": index,
                     "start_sample": [r[2] for r in rows], "end_sample": [r[3] for r in rows],
                     "backend": ["webrtc"] * len(rows), "content_id": [r[1] for r in rows]}, VAD_SEGMENTS)


def _labels(content: str, digest: str, spans: list[tuple[int, int, str | None]], status: str = "ok") -> pa.Table:
    n = len(spans)
    return pa.table({"content_id": [content] * n, "start_sample": [s[0] for s in spans],
                     "end_sample": [s[1] for s in spans], "speaker": [s[2] for s in spans], "status": [status] * n,
                     "error": [None if status == "ok" else "no window"] * n, "segments_digest": [digest] * n},
                    schema=SPEAKER_STORE)


def test_speaker_labels_come_from_the_parts_holding_the_rebuilt_recordings_only(tmp_path) -> None:
    segments = _segments([("a", "ca", 0, 16000), ("a", "ca", 20000, 40000), ("b", "cb", 100, 900),
                          ("c", "cc", 0, 8000)])
    digest = dict(zip(*segments_digests(segments).to_pydict().values()))
    store = speaker_store(tmp_path / "speakers")
    store.append(_labels("cb", digest["cb"], [(0, 0, None)], status="failed"))  # retried below
    store.append(_labels("ca", digest["ca"], [(0, 16000, "S1"), (20000, 40000, "S2")]))
    unrelated = store.append(_labels("cc", digest["cc"], [(0, 8000, "S1")]))
    store.append(_labels("cb", digest["cb"], [(100, 900, "S1")]))
    source = StoreSource(transcript_store(tmp_path / "asr"), store, tmp_path / "index")
    versions = source.versions()
    assert sorted(versions["content_id"].to_pylist()) == ["ca", "cb", "cc"]

    unrelated.write_bytes(b"not parquet: a stitch of a and b must not open it")
    rebuilt = segments.filter(pa.array(np.array(segments["recording_id"].to_pylist()) != "c"))
    [(group, _results, labels)] = list(source.load_groups(rebuilt, np.zeros(rebuilt.num_rows, np.int64), 1))
    assert group == 0 and labels is not None
    assert labels.to_pylist() == [  # b's failure was retried: its later ok answer counts
        {"recording_id": "a", "start_sample": 0, "end_sample": 16000, "speaker": "S1", "status": "ok", "error": None},
        {"recording_id": "a", "start_sample": 20000, "end_sample": 40000, "speaker": "S2", "status": "ok",
         "error": None},
        {"recording_id": "b", "start_sample": 100, "end_sample": 900, "speaker": "S1", "status": "ok", "error": None}]
    assert not list((tmp_path / "index").glob("stitch-spill-*"))  # the copies are gone
