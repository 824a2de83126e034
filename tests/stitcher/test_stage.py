"""The stitch stage: pinned schemas, absolute times, exports per recording, partitioned tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vadpack.core.tables import OUTPUT_SCHEMAS, SCHEMA_VERSION
from vadpack.pipeline.cli import main
from vadpack.stitcher.tokens import absolute_token_times

from tests.conftest import REPO, write_config

GOLDEN = Path(__file__).with_name("golden_schemas.json")


def schema_as_json() -> dict:
    return {name: [[f.name, str(f.type)] for f in schema] for name, schema in OUTPUT_SCHEMAS.items()}


def test_public_schemas_are_pinned():
    # Invariant: the public tables change only on purpose. Update golden_schemas.json AND bump
    # core.tables.SCHEMA_VERSION together; this test then fails until both are done.
    golden = json.loads(GOLDEN.read_text())
    assert golden["schema_version"] == SCHEMA_VERSION, "schema_version bumped: update golden_schemas.json"
    assert golden["tables"] == schema_as_json(), "a public table schema changed: bump SCHEMA_VERSION"


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 30_000),
                          st.lists(st.tuples(st.integers(-500, 40_000), st.integers(-500, 40_000)), max_size=12)),
                max_size=8))
def test_absolute_token_times_inside_segment_and_monotonic(segs):
    seg_start, seg_end, rel_s, rel_e, counts = [], [], [], [], []
    for start_ms, dur_ms, toks in segs:
        counts.append(len(toks))
        for a, b in toks:
            seg_start.append(start_ms / 1000)
            seg_end.append((start_ms + dur_ms) / 1000)
            rel_s.append(a)
            rel_e.append(b)
    s, e = absolute_token_times(np.array(seg_start), np.array(seg_end), np.array(rel_s, dtype=np.int64),
                                np.array(rel_e, dtype=np.int64), np.array(counts, dtype=np.int64))
    lo, hi = np.array(seg_start), np.array(seg_end)
    assert np.all(lo <= s + 1e-9) and np.all(s <= e) and np.all(e <= hi + 1e-9)
    offset = 0
    for n in counts:  # monotonic within each segment
        assert np.all(np.diff(s[offset:offset + n]) >= 0) and np.all(np.diff(e[offset:offset + n]) >= 0)
        offset += n


def test_same_file_names_in_two_folders_give_two_documents(tmp_path, tiny_model):
    archive = tmp_path / "archive"
    for folder in ("monday", "tuesday"):
        (archive / folder).mkdir(parents=True)
        shutil.copy(REPO / "examples" / "jfk.flac", archive / folder / "meeting.flac")
    cfg = write_config(tmp_path, [str(archive)], tiny_model, stitch={"formats": ["srt", "vtt", "json", "txt"]})
    assert main(["run", str(cfg), "--no-progress"]) == 0
    out = tmp_path / "work" / "output"
    docs = pd.read_parquet(out / "documents.parquet")
    assert len(docs) == 2 and docs["recording_id"].nunique() == 2
    for fmt in ("srt", "vtt", "json", "txt"):  # the exports mirror the input folders
        files = sorted(f.relative_to(out / fmt).as_posix() for f in (out / fmt).rglob("*") if f.is_file())
        assert files == [f"monday/meeting.{fmt}", f"tuesday/meeting.{fmt}"]
    srt = (out / "srt" / "monday" / "meeting.srt").read_text()
    assert srt.startswith("1\n00:00:") and " --> " in srt


def test_partitioned_tables_read_as_one(tmp_path, small_archive, tiny_model):
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model, stitch={"partition_rows": 20})
    assert main(["run", str(cfg), "--no-progress"]) == 3
    tokens = tmp_path / "work" / "output" / "tokens.parquet"
    assert tokens.is_dir() and len(list(tokens.glob("part-*.parquet"))) > 1
    n_duck = duckdb.execute("select count(*) from read_parquet(?)", [str(tokens / "*.parquet")]).fetchone()[0]
    assert n_duck == len(pd.read_parquet(tokens)) > 20


def test_tables_carry_metadata(tmp_path, small_archive, tiny_model):
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model)
    main(["run", str(cfg), "--no-progress"])
    for name in OUTPUT_SCHEMAS:
        part = next((tmp_path / "work" / "output" / f"{name}.parquet").glob("part-*.parquet"))
        meta = pq.read_schema(part).metadata
        assert meta[b"schema_version"] == SCHEMA_VERSION.encode()
        assert meta[b"model"] == str(tiny_model).encode()
        assert len(meta[b"config_hash"]) == 16 and b"vadpack_version" in meta
    pf = pq.ParquetFile(next((tmp_path / "work" / "output" / "tokens.parquet").glob("part-*.parquet")))
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"


def test_vad_and_stitch_timestamps_cover_human_utterances(tmp_path, real_data, tiny_model):
    """Every human utterance of en_pyannote_sample starts and ends within 0.5 s of a segment edge or inside one."""
    labels = json.loads((real_data / "labels.json").read_text())["en_pyannote_sample/sample.wav"]["transcript"]
    cfg = write_config(tmp_path, [str(real_data / "en_pyannote_sample" / "sample.wav")], tiny_model)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    segs = duckdb.execute("select start_s, end_s from read_parquet(?) order by start_s",
                          [str(tmp_path / "work" / "output" / "segments.parquet")]).fetchall()

    def covered(t: float) -> bool:
        return any(s - 0.5 <= t <= e + 0.5 for s, e in segs)

    missed = [(a, b, text) for a, b, text in labels if not (covered(a) and covered(b))]
    assert missed == [], f"utterances not covered by any segment: {missed}"


def test_punc_model_that_is_not_a_model_folder_is_a_clear_error(tmp_path):
    from vadpack.stitcher.punc import load_punctuator

    (tmp_path / "punc").mkdir()
    with pytest.raises(ValueError, match=r"stitch\.punc_model = .* is not a punctuation model folder"):
        load_punctuator(str(tmp_path / "punc"))


def test_documents_list_languages_by_speech_time():
    from vadpack.stitcher.stage import recording_languages

    seg_table = pa.table({
        "recording_id": ["a", "a", "a", "a", "b", "b", "c"],
        "segment_index": [0, 1, 2, 3, 0, 1, 0],
        "start_s": [0.0, 5.0, 6.0, 20.0, 0.0, 4.0, 0.0],
        "end_s": [4.0, 6.0, 9.0, 29.0, 2.0, 6.0, 3.0],
        "language": ["en", "zh", "zh", "nospeech", "ja", "ko", None],
    })
    # a: en 4 s, zh 1 + 3 s (a tie: en was heard first), nospeech is no language; b: a tie, in order;
    # c: the model does not tell.
    assert recording_languages(seg_table) == {"a": ["en", "zh"], "b": ["ja", "ko"]}
    seg_table = seg_table.set_column(4, "language", pa.array(["en", "zh", "zh", "zh", None, None, None]))
    assert recording_languages(seg_table) == {"a": ["zh", "en"]}
