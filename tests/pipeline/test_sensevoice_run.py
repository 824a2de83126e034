"""The whole pipeline with the tiny SenseVoice: the same table contract as Paraformer, plus its columns.

The contract tests of ``test_run.py`` that only read the finished tables are imported here, so
pytest runs them again on this module's ``finished_run``: SenseVoice's tables must pass them
unchanged. The tests below check what SenseVoice adds (segments.language/emotion/event,
documents.languages, the language in the exports, text without tags).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from vadpack.asr.sensevoice import EMOTION_TAGS, EVENT_TAGS, LANGUAGE_TAGS
from vadpack.core.tables import SCHEMA_VERSION
from vadpack.core.text import join_tokens
from vadpack.pipeline.cli import main
from vadpack.pipeline.config import load_config
from vadpack.pipeline.runner import Runner
from vadpack.pipeline.store import asr_store

from tests.conftest import REPO, write_config, write_small_archive
from tests.pipeline.test_run import (  # noqa: F401  (collected here, run on this module's finished_run)
    test_non_audio_input_is_a_failure_row_with_a_reason,
    test_run_writes_every_table_readable_by_duckdb,
    test_segments_and_tokens_respect_their_bounds,
    test_words_table_agrees_with_documents_and_segments,
)

TAG = re.compile(r"<\|[^|]*\|>")
EMOTIONS = {"unknown" if t == "EMO_UNKNOWN" else t.lower() for t in EMOTION_TAGS}
EVENTS = {"unknown" if t == "Event_UNK" else t.lower() for t in EVENT_TAGS}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_sensevoice):
    """The demo-like run of ``test_run.py`` (same archive, same config) with the tiny SenseVoice."""
    tmp_path = tmp_path_factory.mktemp("sensevoice-run")
    root = write_small_archive(tmp_path / "archive")
    cfg_path = write_config(tmp_path, [str(root)], tiny_sensevoice, stitch={"formats": ["srt", "vtt", "json"]})
    code = main(["run", str(cfg_path), "--no-progress"])
    return cfg_path, load_config(cfg_path), code


def q(sql: str, *params):
    return duckdb.execute(sql, list(params)).fetchall()


def _path(finished_run, name: str) -> str:
    return str(finished_run[1].output_path / f"{name}.parquet")


def test_segments_carry_language_emotion_and_event(finished_run):
    rows = q("select language, emotion, event, text from read_parquet(?)", _path(finished_run, "segments"))
    assert rows and all(r[3] is not None for r in rows)  # every segment decoded
    assert {r[0] for r in rows} <= set(LANGUAGE_TAGS)
    assert {r[1] for r in rows} <= EMOTIONS and {r[2] for r in rows} <= EVENTS
    part = next(Path(_path(finished_run, "segments")).glob("part-*.parquet"))  # a table is a folder of parts
    assert pq.read_schema(part).metadata[b"schema_version"] == SCHEMA_VERSION.encode()


def test_text_holds_no_tags(finished_run):
    # Invariant: the tags live only in their columns, never in the text, tokens or words.
    for table, column in (("segments", "text"), ("documents", "text"), ("tokens", "token"), ("words", "word")):
        values = [v for (v,) in q(f"select {column} from read_parquet(?)", _path(finished_run, table))]
        assert values and not any(TAG.search(v or "") for v in values), table


def test_documents_list_languages_by_speech_time(finished_run):
    want = q("""
        select recording_id, list(language order by speech_s desc, first_index) from (
            select recording_id, language, sum(end_s - start_s) as speech_s, min(segment_index) as first_index
            from read_parquet(?) where language is not null and language <> 'nospeech'
            group by recording_id, language)
        group by recording_id""", _path(finished_run, "segments"))
    got = dict(q("select recording_id, languages from read_parquet(?)", _path(finished_run, "documents")))
    assert {rid: langs for rid, langs in got.items() if langs} == dict(want)
    assert all(langs is not None for langs in got.values())  # a recording without speech: an empty list


def test_words_join_back_to_each_segment_text(finished_run):
    words = q("""select recording_id, segment_index, list(word order by word_index) from read_parquet(?)
                 group by recording_id, segment_index""", _path(finished_run, "words"))
    texts = {(r, i): t for r, i, t in q("select recording_id, segment_index, text from read_parquet(?)",
                                        _path(finished_run, "segments"))}
    assert words
    for rid, index, segment_words in words:
        assert join_tokens(segment_words) == texts[(rid, index)], (rid, index)


def test_exports_carry_the_language(finished_run):
    out = finished_run[1].output_path
    segments = q("select recording_id, segment_index, language from read_parquet(?)", _path(finished_run, "segments"))
    language = {(r, i): lang for r, i, lang in segments}
    for path in sorted((out / "json").glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for seg in doc["segments"]:
            assert seg["language"] == language[(doc["recording_id"], seg["segment_index"])]
        if doc["segments"]:
            first = next(s["language"] for s in doc["segments"] if s["text"])
            srt = (out / "srt" / path.with_suffix(".srt").name).read_text(encoding="utf-8")
            vtt = (out / "vtt" / path.with_suffix(".vtt").name).read_text(encoding="utf-8")
            if first != "nospeech":
                assert srt.split("\n")[2].startswith(f"[{first}] ")
                assert f"<lang {first}>" in vtt


@pytest.mark.parametrize("override", ["asr.language=en", "asr.use_itn=true"])
def test_a_changed_sensevoice_setting_makes_asr_stale(finished_run, override):
    # Both change results, so they are part of the store key: asr must decode again, into another store.
    cfg_path, cfg, _ = finished_run
    assert Runner(cfg).state("asr").state == "done"
    changed = Runner(load_config(cfg_path, [override]))
    assert changed.state("asr").state == "stale" and changed.state("asr").reason == "asr settings changed"
    assert asr_store(changed.cfg.asr, changed.work) != asr_store(cfg.asr, changed.work)


def test_demo_config_points_at_the_tiny_sensevoice():
    cfg = load_config(REPO / "configs" / "demo-sensevoice.yaml")
    assert Path(cfg.asr.model).name == "tiny-sensevoice" and cfg.asr.device == "cpu"
    assert cfg.asr.language == "auto" and cfg.asr.use_itn is False
    assert load_config(REPO / "configs" / "sensevoice.yaml").asr.model == "iic/SenseVoiceSmall"


@pytest.fixture(scope="module")
def english_run(finished_run):
    """The same archive with ``asr.language: en`` (the tiny SenseVoice answers a language it is asked for)."""
    cfg_path, cfg, _ = finished_run
    out = cfg.work_path / "output-en"
    code = main(["run", str(cfg_path), "--no-progress", "-o", "asr.language=en", "-o", f"output_dir={out}"])
    return out, code


def test_a_forced_language_reaches_every_table_and_export(english_run):
    out, code = english_run
    assert code == 3  # the text file named .mp3, as before
    assert {lang for (lang,) in q("select language from read_parquet(?)", str(out / "segments.parquet"))} == {"en"}
    docs = q("select n_segments, languages from read_parquet(?)", str(out / "documents.parquet"))
    assert sorted(map(tuple, (langs for n, langs in docs if n))) == [("en",)] * 3
    assert [langs for n, langs in docs if not n] == [[]]  # the silent file: no language found
    for srt in (out / "srt").glob("*.srt"):
        text = srt.read_text(encoding="utf-8")
        assert text.count("[en] ") == (1 if text else 0)  # marked where the language starts, once
    for vtt in (out / "vtt").glob("*.vtt"):
        cues = vtt.read_text(encoding="utf-8").split("\n\n")[1:-1]
        assert all(cue.split("\n", 1)[1].startswith("<lang en>") for cue in cues)


def test_readme_language_queries_run(finished_run):
    text = (REPO / "README.md").read_text()
    section = text.split("## Which model for which archive", 1)[1].split("\n## ", 1)[0]
    queries = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    assert len(queries) == 2
    out = str(finished_run[1].output_path)
    by_language, by_document = (q(query.replace("runs/demo-sensevoice/output", out)) for query in queries)
    assert by_language and sum(row[2] for row in by_language) == q(
        "select count(*) from read_parquet(?) where language is not null", _path(finished_run, "segments"))[0][0]
    assert len(by_document) == 4 and all(isinstance(row[2], bool) or row[2] is None for row in by_document)
