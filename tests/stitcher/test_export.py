"""Exports: exact SRT/VTT/JSON/TXT text, and file names that stay inside the output folder."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from vadpack.stitcher.export import (
    document_cues,
    document_from_rows,
    document_from_tables,
    render,
    safe_export_name,
    srt_time,
    to_srt,
    to_txt,
    to_vtt,
    vtt_time,
    write_document_exports,
    write_exports,
)
from vadpack.stitcher.types import DocumentText, SegmentText, Sentence, TokenTime


def make_doc() -> DocumentText:
    seg0 = SegmentText(0, 1.0, 4.0, "你好hello world", (
        TokenTime("你", 1.0, 1.2), TokenTime("好", 1.2, 1.4), TokenTime("hel@@", 2.5, 2.7),
        TokenTime("lo", 2.7, 2.9), TokenTime("world", 3.0, 3.5)))
    seg1 = SegmentText(1, 3661.5, 3663.0, "no tokens here")
    seg2 = SegmentText(2, 3700.0, 3701.0, None)  # failed in asr
    return DocumentText("meeting-1a2b3c4d", "/data/a/meeting.wav", 3702.25, "你好hello world no tokens here",
                        (seg0, seg1, seg2))


@pytest.mark.parametrize("t_s, srt, vtt", [
    (0.0, "00:00:00,000", "00:00:00.000"),
    (1.5, "00:00:01,500", "00:00:01.500"),
    (59.9995, "00:01:00,000", "00:01:00.000"),  # rounds to the nearest ms, carrying into minutes
    (3661.042, "01:01:01,042", "01:01:01.042"),
    (0.0125, "00:00:00,013", "00:00:00.013"),  # half up, not half to even
    (360000.0, "100:00:00,000", "100:00:00.000"),
])
def test_times(t_s, srt, vtt):
    assert srt_time(t_s) == srt and vtt_time(t_s) == vtt


def test_negative_or_nan_time_is_rejected():
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="non-negative"):
            srt_time(bad)


def test_cues_split_at_pauses_and_skip_failed_segments():
    cues = document_cues(make_doc(), gap_s=0.8)
    assert [(c.text, c.start_s, c.end_s) for c in cues] == [
        ("你好", 1.0, 1.4), ("hello world", 2.5, 3.5), ("no tokens here", 3661.5, 3663.0)]


def test_srt_exact():
    assert render(make_doc(), "srt", 0.8) == (
        "1\n00:00:01,000 --> 00:00:01,400\n你好\n\n"
        "2\n00:00:02,500 --> 00:00:03,500\nhello world\n\n"
        "3\n01:01:01,500 --> 01:01:03,000\nno tokens here\n\n")


def test_vtt_exact_and_escaped():
    assert render(make_doc(), "vtt", 0.8) == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:01.400\n你好\n\n"
        "00:00:02.500 --> 00:00:03.500\nhello world\n\n"
        "01:01:01.500 --> 01:01:03.000\nno tokens here\n\n")
    assert to_vtt([Sentence("a < b & c --> d", 0.0, 1.0)]) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na &lt; b &amp; c -&gt; d\n\n")
    assert to_vtt([]) == "WEBVTT\n\n"


def test_cue_text_stays_on_one_line():
    # A blank line would end the SRT cue early.
    assert to_srt([Sentence("line one\n\nline two", 0.0, 1.0)]) == (
        "1\n00:00:00,000 --> 00:00:01,000\nline one line two\n\n")
    assert to_txt([Sentence("a\nb", 0, 1), Sentence("c", 1, 2)]) == "a b\nc\n"


def test_json_document():
    text = render(make_doc(), "json", 0.8)
    data = json.loads(text)
    assert data["recording_id"] == "meeting-1a2b3c4d" and data["path"] == "/data/a/meeting.wav"
    assert data["duration_s"] == 3702.25 and data["text"] == "你好hello world no tokens here"
    assert [s["segment_index"] for s in data["segments"]] == [0, 1, 2]
    assert data["segments"][0]["tokens"][2] == {"token": "hel@@", "start_s": 2.5, "end_s": 2.7, "speaker": None}
    assert data["segments"][0]["speaker"] is None  # no speakers stage: null, never missing
    assert data["segments"][2]["text"] is None and data["segments"][1]["tokens"] == []
    assert "你好" in text  # written as UTF-8, not \u escapes


def documented_json(doc: DocumentText) -> str:
    """The JSON export as documented, built with the standard library's encoder (independent of the writer)."""
    ms = lambda t: round(float(t), 3)  # noqa: E731
    data = {"recording_id": doc.recording_id, "path": doc.path, "duration_s": ms(doc.duration_s), "text": doc.text,
            "languages": list(doc.languages),
            "segments": [{"segment_index": s.segment_index, "start_s": ms(s.start_s), "end_s": ms(s.end_s),
                          "text": s.text, "speaker": s.speaker, "language": s.language, "emotion": s.emotion,
                          "event": s.event,
                          "tokens": [{"token": t.token, "start_s": ms(t.start_s), "end_s": ms(t.end_s),
                                      "speaker": t.speaker} for t in s.tokens]} for s in doc.segments]}
    return json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def test_json_bytes_are_the_documented_format():
    # Quotes, backslashes, control characters, CJK, emoji, a lone surrogate, times needing rounding, a huge
    # and a tiny time, null text, no tokens, speakers and languages; and a document without segments.
    seg0 = SegmentText(0, 0.0004, 1e7 + 0.0005, 'say "hi"\\ \t\n\x01', (
        TokenTime('"', 0.0005, 0.0015, "S1"), TokenTime("\\n", 1 / 3, 2 / 3, None),
        TokenTime("😀\ud800", 1e-9, 123456.78951, "S2")), speaker="S1", language="zh", emotion="NEUTRAL",
        event="Speech")
    seg1 = SegmentText(7, 5.0, 6.0, None)
    seg2 = SegmentText(8, 6.0, 7.25, "", (TokenTime("", 6.0, 6.0),))
    docs = [make_doc(), make_doc_with_speakers(),
            DocumentText("r\u00e9c", "C:\\a b\\ü.wav", 1.0005, "t", (seg0, seg1, seg2), languages=("zh", "en")),
            DocumentText("empty", "", 0.0, "", ())]
    for doc in docs:
        text = render(doc, "json", 0.8)
        assert text == documented_json(doc)
        assert json.loads(text)["segments"] == json.loads(documented_json(doc))["segments"]
    assert render(docs[3], "json", 0.8) == ('{\n "recording_id": "empty",\n "path": "",\n "duration_s": 0.0,\n'
                                            ' "text": "",\n "languages": [],\n "segments": []\n}\n')


def test_json_refuses_nan_times():
    with pytest.raises(ValueError, match="not JSON compliant"):
        render(DocumentText("r", "p", float("nan"), "", ()), "json", 0.8)


def test_txt_document():
    assert render(make_doc(), "txt", 0.8) == "你好\nhello world\nno tokens here\n"


def make_doc_with_speakers() -> DocumentText:
    # Two speakers inside one segment with no pause between them, and a token-less segment of S1.
    seg0 = SegmentText(0, 1.0, 4.0, "yes no ok", (
        TokenTime("yes", 1.0, 1.5, "S1"), TokenTime("no", 1.6, 2.0, "S2"), TokenTime("ok", 2.1, 2.5, "S2")),
        speaker="S2")
    seg1 = SegmentText(1, 5.0, 6.0, "fine", speaker="S1")
    return DocumentText("r", "/a/r.wav", 7.0, "yes no ok fine", (seg0, seg1))


def test_exports_show_the_speaker_and_split_cues_where_it_changes():
    doc = make_doc_with_speakers()
    assert render(doc, "srt", 0.8) == ("1\n00:00:01,000 --> 00:00:01,500\nS1: yes\n\n"
                                       "2\n00:00:01,600 --> 00:00:02,500\nS2: no ok\n\n"
                                       "3\n00:00:05,000 --> 00:00:06,000\nS1: fine\n\n")
    assert render(doc, "vtt", 0.8).splitlines()[2:4] == ["00:00:01.000 --> 00:00:01.500", "S1: yes"]
    assert render(doc, "txt", 0.8) == "S1: yes\nS2: no ok\nS1: fine\n"
    data = json.loads(render(doc, "json", 0.8))
    assert [s["speaker"] for s in data["segments"]] == ["S2", "S1"]
    assert [t["speaker"] for t in data["segments"][0]["tokens"]] == ["S1", "S2", "S2"]


def test_unknown_format():
    with pytest.raises(ValueError, match="allowed formats"):
        render(make_doc(), "docx", 0.8)


# ---- file names ------------------------------------------------------------------------------

UNSAFE_PATHS = [
    "../../etc/passwd.wav", "/data/x/..", "..", ".", "", "/", "a/b/.hidden.wav", "-rf.wav",
    "my meeting (final) v2.wav", "$(rm -rf ~);`id`|&>x<y*?.mp3", "会议 记录：第一次.m4a", "naïve café.flac",
    "tab\tnew\nline\x00nul\x1b.wav", "C:\\Users\\me\\..\\rec.wav", "a" * 400 + ".wav", "字" * 200 + ".wav",
    "emoji 🎤 talk.ogg", "..\\..\\win.wav", "a..b...c.wav",
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_safe_export_name_stays_in_folder(path, tmp_path):
    name = safe_export_name(path, "rec-0123abcd")
    assert name not in ("", ".", "..")
    assert not any(ch in name for ch in "/\\\x00") and ".." not in name
    assert all(ch.isprintable() and not ch.isspace() for ch in name)
    assert not name.startswith((".", "-"))
    assert not any(ch in name for ch in "$`;|&<>*?()~'\"")
    assert len((name + ".json").encode("utf-8")) <= 255
    assert name.endswith("rec-0123abcd")
    target = (tmp_path / f"{name}.srt").resolve()
    assert target.parent == tmp_path.resolve()
    target.write_text("ok")  # the file system accepts it


def test_safe_export_name_readable():
    assert safe_export_name("/data/a/my meeting (final).wav", "abc123") == "my_meeting_final__abc123"
    assert safe_export_name("/x/会议 记录.m4a", "audio-1a2b3c4d") == "会议_记录__audio-1a2b3c4d"
    assert safe_export_name("../../etc/passwd.wav", "r1") == "passwd__r1"
    # The scan stage's ids start with the stem: the id alone is then the name.
    assert safe_export_name("/x/standup.wav", "standup-1a2b3c4d") == "standup-1a2b3c4d"


def test_safe_export_name_same_file_name_in_two_folders():
    a = safe_export_name("/2023/meeting.wav", "meeting-11111111")
    b = safe_export_name("/2024/meeting.wav", "meeting-22222222")
    assert a != b


@pytest.mark.parametrize("rid", ["../../evil id", "x.", "a..b", "-x", "a__b", "é", "x" * 101, ""])
def test_safe_export_name_unsafe_id_is_hashed(rid):
    name = safe_export_name("a.wav", rid)
    assert name.startswith("a__id-") and len(name) == len("a__id-") + 32


def test_safe_export_name_never_collides_for_different_ids():
    # Invariant: different recording ids give different names, whatever the paths and ids look like.
    paths = ["a.wav", "a_b.wav", "x/a.wav", "", "a__b.wav", "会议.wav", "b.wav", "a-b.wav"]
    ids = ["b", "a_b", "a", "b__c", "c", "_x", "../id", "a-b", "A", "a__b", "id-" + "0" * 32, "b-c"]
    owners: dict[str, set[str]] = {}
    for rid in ids:
        for path in paths:
            owners.setdefault(safe_export_name(path, rid), set()).add(rid)
    assert all(len(rids) == 1 for rids in owners.values())


def test_write_exports_atomic_files(tmp_path):
    doc = make_doc()
    paths = write_exports(doc, ("srt", "vtt", "json", "txt"), tmp_path, 0.8)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"{fmt}/meeting-1a2b3c4d.{fmt}" for fmt in ("srt", "vtt", "json", "txt")]
    assert paths[0].read_text(encoding="utf-8") == render(doc, "srt", 0.8)
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_write_document_exports_from_rows(tmp_path):
    doc = {"recording_id": "r1", "path": "../../etc/passwd.wav", "duration_s": 5.0, "text": "hello world"}
    segments = [{"recording_id": "r1", "segment_index": 0, "start_s": 0.5, "end_s": 2.0, "text": "hello world",
                 "batch_id": 0, "n_tokens": 2}]
    tokens = [{"recording_id": "r1", "segment_index": 0, "token_index": 1, "token": "world", "start_s": 1.0,
               "end_s": 1.5},
              {"recording_id": "r1", "segment_index": 0, "token_index": 0, "token": "hello", "start_s": 0.5,
               "end_s": 0.9}]
    assert write_document_exports(tmp_path, ("srt", "txt"), doc, segments, tokens, 0.8) == 2
    assert (tmp_path / "srt" / "passwd__r1.srt").read_text(encoding="utf-8") == (
        "1\n00:00:00,500 --> 00:00:01,500\nhello world\n\n")
    assert (tmp_path / "txt" / "passwd__r1.txt").read_text(encoding="utf-8") == "hello world\n"


def test_a_document_from_table_slices_is_the_document_from_rows():
    # Tokens out of order across and within segments, speakers, a segment without tokens, one with text None.
    doc = {"recording_id": "r1", "path": "a/b.wav", "duration_s": 9.0, "text": "x", "languages": ["en"]}
    segments = [{"recording_id": "r1", "segment_index": k, "start_s": float(k), "end_s": k + 0.9,
                 "text": None if k == 2 else f"s{k}", "speaker": "S2" if k else "S1", "language": "en",
                 "emotion": None, "event": None} for k in (1, 0, 2, 3)]
    tokens = [{"recording_id": "r1", "segment_index": seg, "token_index": tok, "token": f"t{seg}{tok}",
               "start_s": seg + tok / 10, "end_s": seg + tok / 10 + 0.05, "speaker": "S1" if tok % 2 else "S2"}
              for seg, tok in ((1, 1), (0, 0), (1, 0), (0, 2), (0, 1), (3, 0))]
    by_rows = document_from_rows(doc, segments, tokens)
    assert [[t.token for t in s.tokens] for s in by_rows.segments] == [["t00", "t01", "t02"], ["t10", "t11"], [],
                                                                     ["t30"]]
    assert document_from_tables(doc, pa.Table.from_pylist(segments), pa.Table.from_pylist(tokens)) == by_rows
    empty = pa.Table.from_pylist(tokens).slice(0, 0)
    assert document_from_tables(doc, pa.Table.from_pylist(segments), empty) == document_from_rows(doc, segments, [])


# ---- the language, when the model tells it (SenseVoice) ------------------------------------------

def make_sensevoice_doc() -> DocumentText:
    seg0 = SegmentText(0, 0.5, 2.0, "你好", (TokenTime("你", 0.5, 0.8), TokenTime("好", 0.8, 1.0)),
                       language="zh", emotion="neutral", event="speech")
    seg1 = SegmentText(1, 3.0, 4.0, "so it is", language="en", emotion="happy", event="laughter")
    seg2 = SegmentText(2, 5.0, 6.0, "and then", language="en", emotion="neutral", event="speech")
    seg3 = SegmentText(3, 7.0, 7.5, "嗯", language="nospeech", emotion="unknown", event="bgm")
    return DocumentText("sv-1", "/data/sv.wav", 8.0, "你好so it is and then嗯", (seg0, seg1, seg2, seg3),
                        languages=("en", "zh"))


def test_srt_marks_the_language_where_it_changes():
    # SRT has no metadata: "[zh]" opens the first cue and each cue whose language differs from the last.
    assert render(make_sensevoice_doc(), "srt", 0.8) == (
        "1\n00:00:00,500 --> 00:00:01,000\n[zh] 你好\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\n[en] so it is\n\n"
        "3\n00:00:05,000 --> 00:00:06,000\nand then\n\n"
        "4\n00:00:07,000 --> 00:00:07,500\n嗯\n\n")  # nospeech is no language: no marker


def test_vtt_puts_each_cue_in_a_language_span():
    assert render(make_sensevoice_doc(), "vtt", 0.8) == (
        "WEBVTT\n\n"
        "00:00:00.500 --> 00:00:01.000\n<lang zh>你好</lang>\n\n"
        "00:00:03.000 --> 00:00:04.000\n<lang en>so it is</lang>\n\n"
        "00:00:05.000 --> 00:00:06.000\n<lang en>and then</lang>\n\n"
        "00:00:07.000 --> 00:00:07.500\n嗯\n\n")


def test_json_carries_language_emotion_and_event():
    data = json.loads(render(make_sensevoice_doc(), "json", 0.8))
    assert data["languages"] == ["en", "zh"]
    assert [(s["language"], s["emotion"], s["event"]) for s in data["segments"]] == [
        ("zh", "neutral", "speech"), ("en", "happy", "laughter"), ("en", "neutral", "speech"),
        ("nospeech", "unknown", "bgm")]
    paraformer = json.loads(render(make_doc(), "json", 0.8))  # the model does not tell: null, and no languages
    assert paraformer["languages"] == [] and {s["language"] for s in paraformer["segments"]} == {None}


def test_txt_has_no_language_marks():
    assert render(make_sensevoice_doc(), "txt", 0.8) == "你好\nso it is\nand then\n嗯\n"


def test_document_rows_bring_the_language_along(tmp_path):
    doc = {"recording_id": "r1", "path": "talk.wav", "duration_s": 5.0, "text": "hello", "languages": ["en"]}
    segments = [{"recording_id": "r1", "segment_index": 0, "start_s": 0.5, "end_s": 2.0, "text": "hello",
                 "language": "en", "emotion": "neutral", "event": "speech"}]
    tokens = [{"recording_id": "r1", "segment_index": 0, "token_index": 0, "token": "hello", "start_s": 0.5,
               "end_s": 0.9}]
    assert write_document_exports(tmp_path, ("srt", "json"), doc, segments, tokens, 0.8) == 2
    assert (tmp_path / "srt" / "talk__r1.srt").read_text(encoding="utf-8") == (
        "1\n00:00:00,500 --> 00:00:00,900\n[en] hello\n\n")
    data = json.loads((tmp_path / "json" / "talk__r1.json").read_text(encoding="utf-8"))
    assert data["languages"] == ["en"] and data["segments"][0]["emotion"] == "neutral"
