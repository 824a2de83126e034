"""Speaker columns, turns and the speakers table from hand-made spans and tokens (exact truth)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from vadpack.core.tables import SPEAKERS, TURNS
from vadpack.stitcher.speakers import (
    SpeakerLabels,
    build_turns,
    document_speaker_counts,
    segment_speakers,
    segment_turns,
    speakers_at,
    speakers_table,
    token_speakers,
    turn_overlap,
)
from vadpack.stitcher.text import join_tokens

SR = 16_000


def spans(rows: list[tuple[str, float, float, str]]) -> pa.Table:
    return pa.table({"recording_id": [r[0] for r in rows], "start_sample": [round(r[1] * SR) for r in rows],
                     "end_sample": [round(r[2] * SR) for r in rows], "speaker": [r[3] for r in rows]})


# Recording "a": one segment 0-6 s with S1 until 3 s and S2 after; a second segment 8-10 s of S1.
# Recording "b": one speaker. Recording "c": no spans at all.
SPANS = spans([("b", 1.0, 4.0, "S1"), ("a", 3.0, 6.0, "S2"), ("a", 0.0, 3.0, "S1"), ("a", 8.0, 10.0, "S1")])
TOKENS = pa.table({
    "recording_id": ["a"] * 7 + ["b", "b", "c"],
    "segment_index": [0, 0, 0, 0, 0, 1, 1, 0, 0, 0],
    "token": ["hel@@", "lo", "there", "你", "好", "good", "bye", "yes", "no", "zzz"],
    "start_s": [0.5, 1.0, 2.0, 3.2, 4.0, 8.5, 9.0, 1.5, 2.5, 0.0],
    "end_s": [1.0, 1.5, 3.1, 3.8, 4.5, 9.0, 9.5, 2.0, 3.0, 1.0],
})


def test_a_token_gets_the_speaker_of_its_midpoint() -> None:
    # "there" runs 2.0-3.1 s across the change at 3.0 s; its midpoint 2.55 s is S1's.
    assert token_speakers(TOKENS, SPANS, SR).to_pylist() == ["S1", "S1", "S1", "S2", "S2", "S1", "S1", "S1", "S1",
                                                             None]


def test_lookups_at_edges_and_outside_spans() -> None:
    got = speakers_at(["a", "a", "a", "a", "b", "zz"], np.array([0.0, 2.99, 3.0, 7.0, 4.0, 1.0]), SPANS, SR)
    assert got.to_pylist() == ["S1", "S1", "S2", None, None, None]  # [start, end): the end is outside


def test_a_segment_gets_the_speaker_covering_most_of_it() -> None:
    segments = pa.table({"recording_id": ["a", "a", "a", "b", "c"], "start_s": [0.0, 8.0, 2.0, 1.0, 0.0],
                         "end_s": [6.0, 10.0, 5.0, 4.0, 2.0]})
    # 0-6 s: S1 3 s, S2 3 s: a tie goes to the speaker heard first in the segment.
    assert segment_speakers(segments, SPANS, SR).to_pylist() == ["S1", "S1", "S2", "S1", None]


def test_turns_split_at_speaker_changes_inside_a_segment_and_join_across_segments() -> None:
    turns = build_turns(TOKENS, token_speakers(TOKENS, SPANS, SR), join_tokens)
    assert turns.schema == TURNS
    assert turns["overlap"].null_count == turns.num_rows  # set by the stitcher where segmentation ran
    assert turns.drop_columns(["overlap"]).to_pylist() == [
        {"recording_id": "a", "turn_index": 0, "speaker": "S1", "start_s": 0.5, "end_s": 3.1, "text": "hello there"},
        {"recording_id": "a", "turn_index": 1, "speaker": "S2", "start_s": 3.2, "end_s": 4.5, "text": "你好"},
        {"recording_id": "a", "turn_index": 2, "speaker": "S1", "start_s": 8.5, "end_s": 9.5, "text": "good bye"},
        {"recording_id": "b", "turn_index": 0, "speaker": "S1", "start_s": 1.5, "end_s": 3.0, "text": "yes no"},
        {"recording_id": "c", "turn_index": 0, "speaker": None, "start_s": 0.0, "end_s": 1.0, "text": "zzz"},
    ]
    assert build_turns(TOKENS.slice(0, 0), pa.array([], pa.string()), join_tokens).num_rows == 0


def test_unlabelled_tokens_make_one_turn_per_segment() -> None:
    # Recording "c" has no spans (the stage failed on it): its two segments stay two turns.
    tokens = pa.table({"recording_id": ["c"] * 3, "segment_index": [0, 0, 1], "token": ["yes", "no", "maybe"],
                       "start_s": [0.0, 0.5, 5.0], "end_s": [0.4, 0.9, 5.5]})
    turns = build_turns(tokens, token_speakers(tokens, SPANS, SR), join_tokens).to_pylist()
    assert [(t["turn_index"], t["speaker"], t["start_s"], t["end_s"], t["text"]) for t in turns] == [
        (0, None, 0.0, 0.9, "yes no"), (1, None, 5.0, 5.5, "maybe")]


def test_without_speakers_each_segment_is_one_turn() -> None:
    segments = pa.table({"recording_id": ["b", "a", "a"], "segment_index": [0, 1, 0], "start_s": [0.0, 5.0, 1.0],
                         "end_s": [1.0, 6.0, 2.0], "text": ["x", "z", None]})
    turns = segment_turns(segments)
    assert turns["overlap"].null_count == turns.num_rows
    assert turns.drop_columns(["overlap"]).to_pylist() == [
        {"recording_id": "a", "turn_index": 0, "speaker": None, "start_s": 1.0, "end_s": 2.0, "text": None},
        {"recording_id": "a", "turn_index": 1, "speaker": None, "start_s": 5.0, "end_s": 6.0, "text": "z"},
        {"recording_id": "b", "turn_index": 0, "speaker": None, "start_s": 0.0, "end_s": 1.0, "text": "x"},
    ]


def test_speakers_table_and_counts_per_document() -> None:
    turns = build_turns(TOKENS, token_speakers(TOKENS, SPANS, SR), join_tokens)
    table = speakers_table(SPANS, turns, SR)
    assert table.schema == SPEAKERS
    assert table.to_pylist() == [
        {"recording_id": "a", "speaker": "S1", "talk_s": 5.0, "n_turns": 2, "first_s": 0.0},
        {"recording_id": "a", "speaker": "S2", "talk_s": 3.0, "n_turns": 1, "first_s": 3.0},
        {"recording_id": "b", "speaker": "S1", "talk_s": 3.0, "n_turns": 1, "first_s": 1.0},
    ]
    assert document_speaker_counts(["a", "b", "c"], SPANS).tolist() == [2, 1, 0]
    assert speakers_table(SPANS.slice(0, 0), turns, SR).num_rows == 0


def test_labels_split_spans_from_failures_and_count_speakers_per_document() -> None:
    rows = pa.table({
        "recording_id": ["b", "a", "a", "a", "a", "d"], "start_sample": [16_000, 48_000, 0, 128_000, 64_000, None],
        "end_sample": [64_000, 96_000, 48_000, 160_000, 80_000, None],
        "speaker": ["S1", "S2", "S1", "S1", None, None],
        "status": ["ok", "ok", "ok", "ok", "failed", "failed"], "error": [None, None, None, None, "oom", "none"]})
    labels = SpeakerLabels.from_rows(rows)
    assert labels.spans.to_pylist() == SPANS.sort_by([("recording_id", "ascending"),
                                                      ("start_sample", "ascending")]).to_pylist()
    assert labels.chunk("a", "a")["recording_id"].to_pylist() == ["a"] * 3
    assert labels.chunk("b", "c")["speaker"].to_pylist() == ["S1"]
    # A window failure leaves a's count; a recording that failed whole has none; no speech is 0.
    assert labels.n_speakers(["a", "b", "c", "d"]) == [2, 1, 0, None]


def test_turn_overlap_is_the_seconds_of_each_turn_in_overlap_regions() -> None:
    turns = build_turns(TOKENS, token_speakers(TOKENS, SPANS, SR), join_tokens)
    # "a": overlap 2.0-3.5 s and 9.25-20 s; "b": the model ran and found none (one empty row); "c": not run.
    overlap = pa.table({"recording_id": ["a", "b", "a"], "start_sample": [2 * SR, 0, 37 * SR // 4],
                        "end_sample": [7 * SR // 2, 0, 20 * SR]})
    # a's turns: 0.5-3.1 s (1.1 s inside 2.0-3.5), 3.2-4.5 s (0.3 s), 8.5-9.5 s (0.25 s); b 0; c null
    assert turn_overlap(turns, overlap, SR).to_pylist() == [1.1, 0.3, 0.25, 0.0, None]
    assert turn_overlap(turns, overlap.slice(0, 0), SR).null_count == turns.num_rows


def test_labels_keep_overlap_rows_apart_from_spans_and_failures() -> None:
    rows = pa.table({
        "recording_id": ["a", "a", "a", "b"], "start_sample": [0, 16_000, 4_000, 0],
        "end_sample": [32_000, 24_000, 8_000, 0], "speaker": ["S1", None, None, None],
        "status": ["ok", "overlap", "failed", "overlap"], "error": [None, None, "oom", None]})
    labels = SpeakerLabels.from_rows(rows)
    assert labels.spans.num_rows == 1 and labels.failed["error"].to_pylist() == ["oom"]
    assert labels.overlap.to_pylist() == [{"recording_id": "a", "start_sample": 16_000, "end_sample": 24_000},
                                          {"recording_id": "b", "start_sample": 0, "end_sample": 0}]
    assert labels.overlap_chunk("b", "c")["recording_id"].to_pylist() == ["b"]
    assert labels.n_speakers(["a", "b"]) == [1, 0]
