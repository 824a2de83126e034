"""Script-aware joining of tokens and segments."""

from __future__ import annotations

import pytest
from vadpack.core.text import join_segments, join_tokens, merge_subwords, needs_space


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

