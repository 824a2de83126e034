"""The content-keyed part store on real Parquet parts: atomic appends, the one current-row rule,
compaction and forced replacement (core/partstore.py)."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest
from vadpack.core.partstore import KEY_FILE, speaker_store, transcript_store
from vadpack.core.tables import SPEAKER_STORE, TRANSCRIPTS, to_table, write_table


def transcript(content: str, start: int, batch: int, status: str = "ok", text: str = "") -> dict:
    """A TRANSCRIPTS row of span (content, start, start + 1000)."""
    return {"content_id": content, "start_sample": start, "end_sample": start + 1000, "batch_id": batch,
            "text": text, "tokens": [text] if text else [], "token_start_ms": [0] if text else [],
            "token_end_ms": [10] if text else [], "language": None, "emotion": None, "event": None,
            "status": status, "error": None if status == "ok" else f"failed in batch {batch}"}


def label(content: str, digest: str, start: int | None, speaker: str | None, status: str = "ok") -> dict:
    """A SPEAKER_STORE row."""
    return {"content_id": content, "start_sample": start, "end_sample": None if start is None else start + 500,
            "speaker": speaker, "status": status, "error": None if status == "ok" else "no embedding",
            "segments_digest": digest}


def texts(table: pa.Table) -> list[tuple]:
    return sorted((r["content_id"], r["start_sample"], r["batch_id"], r["status"], r["text"])
                  for r in table.to_pylist())


def test_append_is_atomic_never_overwrites_and_writes_the_key_with_the_first_part(tmp_path, monkeypatch) -> None:
    store = transcript_store(tmp_path / "store" / "asr-x", json.dumps({"model": "m"}))
    assert store.parts() == [] and store.current().num_rows == 0 and store.done().num_rows == 0
    assert not (tmp_path / "store").exists()  # looking a store up creates nothing
    first = store.append(to_table([transcript("a", 0, 0, text="x")], TRANSCRIPTS))
    second = store.append(to_table([transcript("b", 0, 1, text="y")], TRANSCRIPTS))
    assert [p.name for p in store.parts()] == ["part-00000000.parquet", "part-00000001.parquet"] == [first.name,
                                                                                                     second.name]
    assert json.loads((store.folder / KEY_FILE).read_text()) == {"model": "m"}
    with pytest.raises(FileExistsError):
        store.write_part(first, to_table([transcript("c", 0, 2)], TRANSCRIPTS))
    # A write that fails (a full disk) leaves no part and no temporary file; the store reads as before.
    monkeypatch.setenv("VADPACK_FAULTS", "parquet_write=part-00000002!")
    with pytest.raises(OSError):
        store.append(to_table([transcript("c", 0, 2)], TRANSCRIPTS))
    assert sorted(p.name for p in store.folder.iterdir()) == [KEY_FILE, first.name, second.name]
    assert texts(store.current()) == [("a", 0, 0, "ok", "x"), ("b", 0, 1, "ok", "y")]
    # Parts reserved for other processes are numbered after every part there is, in order.
    assert [p.name for p in store.new_parts(2)] == ["part-00000002.parquet", "part-00000003.parquet"]


def test_the_current_transcript_is_the_latest_ok_row_else_the_latest_row(tmp_path) -> None:
    store = transcript_store(tmp_path / "asr")
    store.append(to_table([transcript("a", 0, 0, "failed"), transcript("b", 0, 0, text="b0"),
                           transcript("c", 0, 0, "failed"), transcript("d", 0, 0, text="d0")], TRANSCRIPTS))
    store.append(to_table([transcript("a", 0, 1, text="a1"), transcript("b", 0, 1, "failed"),
                           transcript("c", 0, 1, "failed")], TRANSCRIPTS))
    store.append(to_table([transcript("d", 0, 2, text="d2"), transcript("e", 0, 2, "failed")], TRANSCRIPTS))
    # a: a failure, then its retry decoded; b: an ok row is never displaced by a later failure;
    # c: failed twice, the latest attempt counts; d: two parts with an ok row, the latest; e: only a failure.
    assert texts(store.current()) == [("a", 0, 1, "ok", "a1"), ("b", 0, 0, "ok", "b0"), ("c", 0, 1, "failed", ""),
                                      ("d", 0, 2, "ok", "d2"), ("e", 0, 2, "failed", "")]
    assert sorted(tuple(r.values()) for r in store.done().to_pylist()) == [("a", 0, 1000), ("b", 0, 1000),
                                                                          ("d", 0, 1000)]


def test_the_current_labels_are_a_recordings_rows_of_one_part(tmp_path) -> None:
    store = speaker_store(tmp_path / "speakers")
    store.append(to_table([label("k", "d1", 0, "S1"), label("k", "d1", 500, "S2"),
                           label("k", "d1", 1000, None, "failed"), label("l", "d1", None, None, "failed"),
                           label("m", "d1", 0, "S1")], SPEAKER_STORE))
    store.append(to_table([label("k", "d1", None, None, "failed"), label("l", "d1", 0, "S1"),
                           label("l", "d1", 800, None, "failed"), label("m", "d2", 0, "S2")], SPEAKER_STORE))
    got = sorted((r["content_id"], r["segments_digest"], -1 if r["start_sample"] is None else r["start_sample"],
                  r["status"]) for r in store.current().to_pylist())
    # k: its labelled part stands (a failed window's row with it), a later failure does not displace it;
    # l: a failure labelled again; m: another segments digest is another key.
    assert got == [("k", "d1", 0, "ok"), ("k", "d1", 500, "ok"), ("k", "d1", 1000, "failed"),
                   ("l", "d1", 0, "ok"), ("l", "d1", 800, "failed"), ("m", "d1", 0, "ok"), ("m", "d2", 0, "ok")]


def test_parts_named_before_the_part_store_keep_their_order(tmp_path) -> None:
    # Old transcript stores named parts after their first batch id, a retried name with "-<k>", and
    # prune's part "-pruned", which held every attempt at a span in attempt order.
    folder = tmp_path / "asr"
    for name, rows in (("part-00000003-pruned", [transcript("a", 0, 1, "failed"), transcript("a", 0, 2, text="a2"),
                                                 transcript("b", 0, 1, "failed"), transcript("b", 0, 2, "failed")]),
                       ("part-00000003", [transcript("c", 0, 3, "failed")]),
                       ("part-00000003-1", [transcript("c", 0, 3, text="c3")])):
        write_table(to_table(rows, TRANSCRIPTS), folder / f"{name}.parquet")
    store = transcript_store(folder)
    assert [p.stem for p in store.parts()] == ["part-00000003", "part-00000003-1", "part-00000003-pruned"]
    assert texts(store.current()) == [("a", 0, 2, "ok", "a2"), ("b", 0, 2, "failed", ""), ("c", 0, 3, "ok", "c3")]
    assert store.new_parts(1)[0].name == "part-00000004.parquet"


def test_compaction_keeps_exactly_the_current_rows_of_the_live_keys(tmp_path) -> None:
    store = transcript_store(tmp_path / "asr", "{}")
    store.append(to_table([transcript("a", 0, 0, "failed"), transcript("b", 0, 0, text="b0"),
                           transcript("gone", 0, 0, text="g")], TRANSCRIPTS))
    store.append(to_table([transcript("a", 0, 1, text="a1")], TRANSCRIPTS))
    live = pa.table({"content_id": ["a", "b", "new"], "start_sample": [0, 0, 0], "end_sample": [1000, 1000, 1000]})
    before = sorted(p.name for p in store.folder.iterdir())
    assert store.compact(live, dry_run=True) == 2  # a's failure and the gone span's row
    assert sorted(p.name for p in store.folder.iterdir()) == before
    assert store.compact(live) == 2
    assert [p.name for p in store.parts()] == ["part-00000002.parquet"]
    assert texts(store.read()) == [("a", 0, 1, "ok", "a1"), ("b", 0, 0, "ok", "b0")]
    assert store.compact(live) == 0 and [p.name for p in store.parts()] == ["part-00000002.parquet"]
    # Killed between the compacted part and the removal of the old ones: the same rows count.
    crashed = transcript_store(tmp_path / "crashed")
    shutil.copytree(store.folder, crashed.folder)
    crashed.append(to_table([transcript("gone", 0, 0, text="g")], TRANSCRIPTS))
    crashed.append(store.read())
    assert texts(crashed.current()) == texts(store.read()) + [("gone", 0, 0, "ok", "g")]


def test_a_forced_replacement_swaps_in_once_complete_and_a_half_swap_is_completed(tmp_path) -> None:
    store = transcript_store(tmp_path / "asr-x", '{"model": "m"}')
    store.append(to_table([transcript("a", 0, 0, text="old")], TRANSCRIPTS))
    assert store.working() == store and not store.replacement_pending()
    staged = store.begin_replacement()
    assert store.working() == staged and staged.folder.name == "asr-x.forced" and store.replacement_pending()
    staged.append(to_table([transcript("a", 0, 0, text="new")], TRANSCRIPTS))
    assert texts(store.current()) == [("a", 0, 0, "ok", "old")]  # readers see the old results until the swap
    assert store.finish_replacement() and not store.finish_replacement()
    assert texts(store.current()) == [("a", 0, 0, "ok", "new")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asr-x"]
    # The state between the swap's two renames: the next run completes it.
    staged = store.begin_replacement()
    staged.append(to_table([transcript("a", 0, 0, text="newer")], TRANSCRIPTS))
    store.folder.rename(tmp_path / "asr-x.replaced")
    store.recover_replacement()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["asr-x"]
    assert texts(store.current()) == [("a", 0, 0, "ok", "newer")]
    assert json.loads((store.folder / KEY_FILE).read_text()) == {"model": "m"}
