"""Script-aware joining of tokens and segments, and sentence splits at pauses."""

from __future__ import annotations

import pytest

from stitcher.text import join_segments, join_tokens, merge_subwords, needs_space, split_sentences
from stitcher.types import TokenTime


@pytest.mark.parametrize("tokens, text", [
    (["你", "好", "世", "界"], "你好世界"),
    (["hello", "world"], "hello world"),
    (["hel@@", "lo", "wor@@", "ld"], "hello world"),
    (["un@@", "believ@@", "able"], "unbelievable"),
    (["你", "好", "hello", "世", "界"], "你好hello世界"),  # FunASR: no space between Latin and CJK
    (["我", "用", "py@@", "thon", "写", "code"], "我用python写code"),
    (["你", "好", "，", "世", "界", "。"], "你好，世界。"),  # CJK punctuation glues on both sides
    (["ok", "，", "好"], "ok，好"),
    (["<s>", "你", "<blank>", "好", "<unk>", "</s>"], "你好"),
    (["i", "b", "m", "公", "司"], "IBM公司"),  # FunASR's abbreviation rule
    (["the", "a", "i", "model"], "the AI model"),
    (["第", "2", "0", "2", "4", "年"], "第2024年"),
    (["in", "2", "0", "2", "4"], "in 2024"),  # deviation: FunASR writes "in2024"
    (["hello", ",", "world", "."], "hello, world."),  # deviation: FunASR writes "hello ,world ."
    (["it", "'s"], "it 's"),
    (["wor@@"], "wor"),  # a dangling continuation mark is dropped
    (["wor@@", "</s>", "ld"], "world"),  # specials do not break a word
    ([], ""),
    (["<s>", "</s>"], ""),
])
def test_join_tokens(tokens, text):
    assert join_tokens(tokens) == text


def test_join_tokens_matches_funasr_where_it_does_not_deviate():
    postprocess = pytest.importorskip("funasr.utils.postprocess_utils")
    cases = (["你", "好", "hel@@", "lo", "world", "</s>"], ["hello", "world"], ["i", "b", "m", "公", "司"],
             ["你", "好", "hello", "世", "界"], ["the", "i", "b", "m", "computer"], ["你", "好", "，", "世", "界"],
             ["第", "2", "0", "2", "4", "年"], ["a", "b", "c"], ["<s>", "我", "们", "</s>"])
    for tokens in cases:
        assert join_tokens(tokens) == postprocess.sentence_postprocess(tokens)[0], tokens


def test_merge_subwords():
    assert merge_subwords(["a@@", "b@@", "c", "d"]) == ["abc", "d"]
    assert merge_subwords(["a@@"]) == ["a"]


@pytest.mark.parametrize("left, right, space", [
    ("o", "w", True), ("好", "w", False), ("o", "好", False), ("好", "，", False), ("o", ",", False),
    (",", "w", True), (".", "5", False), ("3", "4", False), ("n", "2", True), ("(", "a", False),
    ("é", "ß", True), ("д", "а", True),
])
def test_needs_space(left, right, space):
    assert needs_space(left, right) is space


@pytest.mark.parametrize("texts, text", [
    (["hello", "world"], "hello world"),
    (["你好", "世界"], "你好世界"),
    (["你好", "world"], "你好world"),
    (["hello", "世界"], "hello世界"),
    (["good.", "Next"], "good. Next"),
    (["  spaced   out ", "", None, "end"], "spaced out end"),  # failed (None) and empty segments skipped
    ([], ""),
])
def test_join_segments(texts, text):
    assert join_segments(texts) == text


def tok(token: str, start_s: float, end_s: float) -> TokenTime:
    return TokenTime(token=token, start_s=start_s, end_s=end_s)


def test_split_sentences_at_pauses():
    tokens = [tok("你", 0.0, 0.2), tok("好", 0.2, 0.4), tok("<blank>", 0.4, 2.0), tok("hel@@", 1.2, 1.4),
              tok("lo", 1.4, 1.6), tok("world", 1.7, 2.0), tok("再", 3.0, 3.2)]
    sentences = split_sentences(tokens, gap_s=0.8)
    assert [s.text for s in sentences] == ["你好", "hello world", "再"]
    assert [(s.start_s, s.end_s) for s in sentences] == [(0.0, 0.4), (1.2, 2.0), (3.0, 3.2)]
    assert [len(s.tokens) for s in sentences] == [2, 3, 1]  # the special token is left out


def test_split_sentences_edges():
    assert split_sentences([], 0.8) == []
    # A pause of exactly gap_s splits; a pause inside a word (after "@@") never does.
    tokens = [tok("yes", 0.0, 0.4), tok("no", 1.2, 1.5), tok("wo@@", 3.0, 3.1), tok("rd", 9.0, 9.2)]
    assert [s.text for s in split_sentences(tokens, 0.8)] == ["yes", "no", "word"]  # 1.2 - 0.4 < 0.8 in floats
    assert [s.text for s in split_sentences(tokens, 0.81)] == ["yes no", "word"]
    with pytest.raises(ValueError, match="sentence_gap_s"):
        split_sentences(tokens, -1)
