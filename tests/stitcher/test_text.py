"""Sentence splits at pauses."""

from __future__ import annotations

import pytest
from vadpack.stitcher.text import split_sentences
from vadpack.stitcher.types import TokenTime


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
