"""Words from the tokens table: exact words and times on hand-made tokens, mixed English and Chinese."""

from __future__ import annotations

import pyarrow as pa
import pytest
from vadpack.core.text import join_tokens
from vadpack.stitcher.words import WORDS_SCHEMA, tokens_to_words, words_per_segment

Token = tuple[str, float, float]


def tokens_table(segments: dict[tuple[str, int], list[Token]]) -> pa.Table:
    """A tokens table (the stitcher's columns) from hand-made tokens per (recording_id, segment_index)."""
    cols: dict[str, list] = {k: [] for k in ("recording_id", "segment_index", "token_index", "token",
                                              "start_s", "end_s")}
    for (rid, seg), toks in segments.items():
        for i, (tok, start, end) in enumerate(toks):
            for key, value in zip(cols, (rid, seg, i, tok, start, end)):
                cols[key].append(value)
    return pa.table(cols, schema=pa.schema([("recording_id", pa.string()), ("segment_index", pa.int32()),
                                            ("token_index", pa.int32()), ("token", pa.string()),
                                            ("start_s", pa.float64()), ("end_s", pa.float64())]))


def words_of(table: pa.Table) -> list[tuple]:
    return [(r["recording_id"], r["segment_index"], r["word_index"], r["word"], r["start_s"], r["end_s"])
            for r in table.to_pylist()]


MIXED = {
    ("meet", 0): [("<s>", 0.0, 0.1), ("我", 0.1, 0.3), ("用", 0.3, 0.5), ("py@@", 0.5, 0.7), ("thon", 0.7, 0.9),
                  ("写", 0.9, 1.0), ("code", 1.0, 1.4), ("</s>", 1.4, 1.5)],
    ("meet", 1): [("un@@", 2.0, 2.2), ("believ@@", 2.2, 2.5), ("able", 2.5, 2.9), ("i", 3.0, 3.1), ("b", 3.1, 3.2),
                  ("m", 3.2, 3.3), ("公", 3.3, 3.5), ("司", 3.5, 3.7), ("wor@@", 3.8, 4.0)],  # "@@" at the end
    ("meet", 2): [("<s>", 5.0, 5.1), ("</s>", 5.1, 5.2)],  # nothing but specials: no words
    ("talk", 0): [("第", 0.0, 0.2), ("2", 0.2, 0.3), ("0", 0.3, 0.4), ("2", 0.4, 0.5), ("4", 0.5, 0.6),
                  ("年", 0.6, 0.8), ("你", 1.0, 1.2), ("好", 1.2, 1.4), ("，", 1.4, 1.4), ("世", 1.5, 1.7),
                  ("界", 1.7, 1.9)],
    ("talk", 1): [("wor@@", 3.0, 3.2), ("</s>", 3.2, 3.2), ("ld", 3.2, 3.5), ("hello", 3.6, 4.0), (",", 4.0, 4.0),
                  ("a@@", 4.1, 4.2), ("b", 4.2, 4.3), ("你好", 4.4, 4.8)],
}

EXPECTED = [
    ("meet", 0, 0, "我", 0.1, 0.3), ("meet", 0, 1, "用", 0.3, 0.5), ("meet", 0, 2, "python", 0.5, 0.9),
    ("meet", 0, 3, "写", 0.9, 1.0), ("meet", 0, 4, "code", 1.0, 1.4),
    ("meet", 1, 0, "unbelievable", 2.0, 2.9), ("meet", 1, 1, "IBM", 3.0, 3.3), ("meet", 1, 2, "公", 3.3, 3.5),
    ("meet", 1, 3, "司", 3.5, 3.7), ("meet", 1, 4, "wor", 3.8, 4.0),
    ("talk", 0, 0, "第", 0.0, 0.2), ("talk", 0, 1, "2024", 0.2, 0.6), ("talk", 0, 2, "年", 0.6, 0.8),
    ("talk", 0, 3, "你", 1.0, 1.2), ("talk", 0, 4, "好，", 1.2, 1.4), ("talk", 0, 5, "世", 1.5, 1.7),
    ("talk", 0, 6, "界", 1.7, 1.9),
    ("talk", 1, 0, "world", 3.0, 3.5),  # a special inside a word does not break it
    ("talk", 1, 1, "hello,", 3.6, 4.0),
    ("talk", 1, 2, "ab", 4.1, 4.3),  # one subword of two letters: not an abbreviation
    ("talk", 1, 3, "你", 4.4, 4.6), ("talk", 1, 4, "好", 4.6, 4.8),  # a two-character token, time shared
]


def test_mixed_english_and_chinese_words_and_times() -> None:
    words = tokens_to_words(tokens_table(MIXED))
    assert words.schema == WORDS_SCHEMA
    got = words_of(words)
    assert [g[:4] for g in got] == [e[:4] for e in EXPECTED]
    # Times are the pieces' own, copied; only the split token's halves are computed (4.4 + 0.2).
    assert [t for g in got for t in g[4:]] == pytest.approx([t for e in EXPECTED for t in e[4:]], abs=1e-12)


def test_row_order_of_the_input_does_not_matter() -> None:
    table = tokens_table(MIXED)
    shuffled = table.take(pa.array(list(range(table.num_rows))[::-1]))
    assert words_of(tokens_to_words(shuffled)) == words_of(tokens_to_words(table))


def test_words_per_segment_counts_every_segment() -> None:
    words = tokens_to_words(tokens_table(MIXED))
    segments = pa.table({"recording_id": ["talk", "meet", "meet", "meet", "talk", "gone"],
                         "segment_index": pa.array([1, 0, 1, 2, 0, 0], pa.int64())})
    # Invariant: one count per segment row, in its order; a segment with no words (only specials, or
    # no tokens at all) counts 0.
    assert words_per_segment(words, segments).to_pylist() == [5, 5, 5, 0, 7, 0]


def test_no_tokens() -> None:
    words = tokens_to_words(tokens_table({}))
    assert words.num_rows == 0 and words.schema == WORDS_SCHEMA
    assert words_per_segment(words, pa.table({"recording_id": ["a"], "segment_index": [0]})).to_pylist() == [0]


@pytest.mark.parametrize("tokens", [
    ["你", "好", "hel@@", "lo", "world", "</s>"], ["i", "b", "m", "公", "司"], ["the", "a", "i", "model"],
    ["in", "2", "0", "2", "4"], ["hello", ",", "world", "."], ["it", "'s"], ["ok", "，", "好"],
    ["我", "用", "py@@", "thon", "写", "code"], ["i", "b", ",", "x"], ["a@@", "b", "c", "d"], ["wor@@"],
    # SenseVoice's SentencePiece pieces as asr.sensevoice.piece_tokens writes them: multi-character
    # CJK and kana pieces, Hangul with "@@" inside a word, digits and punctuation glued without "▁".
    ["今天", "的", "hello", "wor@@", "ld"], ["안녕@@", "하세요", "여러분"], ["it@@", "'s", "3", ":", "30"],
    ["こんにちは", "世界", "。"], ["我们", "used", "gp@@", "u", "s", "，", "ok"],
])
def test_words_write_back_to_the_segment_text(tokens: list[str]) -> None:
    table = tokens_table({("r", 0): [(t, i * 0.1, i * 0.1 + 0.1) for i, t in enumerate(tokens)]})
    words = tokens_to_words(table)["word"].to_pylist()
    # Invariant: the words, written with the stitcher's spacing rule, are the segment's text.
    assert join_tokens(words) == join_tokens(tokens)
