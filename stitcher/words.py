"""Words from the tokens table, computed column-wise: ``@@`` pieces merged, CJK characters one word each.

The word boundaries follow ``core.text.join_tokens``, so that writing a segment's words with its
spacing rule (``needs_space``) gives exactly the segment's text:

- Special tokens (``<s>``, ``</s>``, ``<blank>``, ``<unk>``, ``<OOV>``) are dropped; they do not break
  a word (``wor@@ </s> ld`` is ``world``). A ``@@`` at the end of a segment just ends the word.
- A token ending in ``@@`` continues into the next one: the word starts when its first piece starts
  and ends when its last piece ends.
- Two or more single Latin letters in a row are one word, in capitals (``i b m`` -> ``IBM``).
- Pieces written without a space between them are one word (digits ``2 0 2 4`` -> ``2024``,
  ``hello ,`` -> ``hello,``), except that every CJK character is a word of its own. A token of
  several CJK characters is split into one word per character, its time shared out evenly.
- A token with no letter, digit or ideograph (punctuation) never starts a word after the first:
  it stays with the word before it (``好 ，`` -> ``好，``).

Python runs once per distinct token and per distinct pair of neighbouring characters, never per row,
as in ``core.text``; everything per row is numpy or pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from vadpack.core.tables import WORDS
from vadpack.core.text import SPECIAL_TOKENS, SUBWORD_MARK, is_cjk, needs_space

WORDS_SCHEMA = WORDS  # the public table's schema (core.tables)
_NO_CHAR = 0  # code point meaning "no such character" (never a character of a kept piece)


def tokens_to_words(tokens: pa.Table) -> pa.Table:
    """The words of a tokens table, in order of recording, segment and time.

    Args:
        tokens: a table with the columns recording_id, segment_index, token_index, token, start_s
            and end_s (the stitcher's tokens table; other columns are ignored). Times are absolute
            seconds and non-decreasing within a segment.

    Returns:
        A table of ``WORDS_SCHEMA``: recording_id, segment_index, word_index (from 0 in each segment),
        word, start_s (of its first piece), end_s (of its last piece). Segments whose tokens are all
        special have no rows; count them with ``words_per_segment``.

    Examples:
        Tokens ``hel@@ lo 你 好`` of one segment give the words ``hello``, ``你``, ``好``.
    """
    tokens = tokens.sort_by([("recording_id", "ascending"), ("segment_index", "ascending"),
                             ("token_index", "ascending")])
    pieces = _pieces(tokens)
    starts, capitals = _word_starts(pieces)
    return _assemble(tokens, pieces, starts, capitals)


def words_per_segment(words: pa.Table, segments: pa.Table) -> pa.Array:
    """The number of words of each row of ``segments`` (recording_id, segment_index), 0 when none.

    Args:
        words: the output of ``tokens_to_words``.
        segments: any table with recording_id and segment_index, e.g. the segments table.

    Returns:
        An int32 array, one value per row of ``segments``, in its order.
    """
    keys = ["recording_id", "segment_index"]
    counts = words.group_by(keys).aggregate([("word_index", "count")])
    rows = pa.table({"recording_id": pc.cast(segments["recording_id"], pa.string()),
                     "segment_index": pc.cast(segments["segment_index"], pa.int32()),  # join keys must match
                     "_row": np.arange(segments.num_rows, dtype=np.int64)})
    joined = rows.join(counts, keys=keys, join_type="left outer").sort_by("_row")
    return pc.cast(joined["word_index_count"].fill_null(0), pa.int32()).combine_chunks()


@dataclass(frozen=True, slots=True)
class _Pieces:
    """The kept text pieces of a sorted tokens table, one row each (a token splits into several only
    when it is several CJK characters). Code points are ``_NO_CHAR`` where there is no such character.

    Attributes:
        token_row: the token each piece comes from.
        segment: a number per (recording_id, segment_index), non-decreasing.
        text: the piece without its ``@@`` mark.
        start_s: start of the piece.
        end_s: end of the piece.
        continues: the piece ends in ``@@``: its word goes on in the next piece.
        letter: the piece is one ASCII letter.
        first_cp: code point of the first character.
        last_cp: code point of the last character.
        content_cp: code point of the last letter, digit or ideograph, or ``_NO_CHAR``.
    """

    token_row: np.ndarray
    segment: np.ndarray
    text: pa.Array
    start_s: np.ndarray
    end_s: np.ndarray
    continues: np.ndarray
    letter: np.ndarray
    first_cp: np.ndarray
    last_cp: np.ndarray
    content_cp: np.ndarray


def _pieces(tokens: pa.Table) -> _Pieces:
    """Drop special and empty tokens, split multi-character CJK tokens, describe each piece."""
    stripped = pc.utf8_trim_whitespace(tokens["token"].combine_chunks().fill_null(""))
    encoded = pc.dictionary_encode(stripped)
    vocab = [_describe(t) for t in encoded.dictionary.to_pylist()]  # once per distinct token
    per_token = pa.array([v[0] for v in vocab], pa.list_(pa.string())).take(encoded.indices)
    k = pc.list_value_length(per_token).to_numpy(zero_copy_only=False).astype(np.int64)
    row = np.repeat(np.arange(len(k), dtype=np.int64), k)
    j = np.arange(row.size, dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)  # piece number in its token
    text = pc.list_flatten(per_token)
    start, end = _share_time(tokens, row, j, k[row])
    token_continues = np.array([v[1] for v in vocab], dtype=bool)[encoded.indices.to_numpy()]
    first, last, content, letter = _char_codes(text)
    return _Pieces(token_row=row, segment=_segment_numbers(tokens)[row], text=text, start_s=start,
                   end_s=end, continues=token_continues[row] & (j == k[row] - 1), letter=letter,
                   first_cp=first, last_cp=last, content_cp=content)


def _describe(token: str) -> tuple[list[str], bool]:
    """(pieces, continues) of one distinct token: no pieces for a special or empty token."""
    continues = token.endswith(SUBWORD_MARK)
    core = token[: -len(SUBWORD_MARK)] if continues else token
    if token in SPECIAL_TOKENS or not core:
        return [], False
    if len(core) > 1 and all(is_cjk(ch) and ch.isalnum() for ch in core):
        return list(core), continues  # several ideographs: one word each
    return [core], continues


def _share_time(tokens: pa.Table, row: np.ndarray, j: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each piece's span: its token's, or an even share of it when the token is split."""
    start = tokens["start_s"].to_numpy()[row]
    end = tokens["end_s"].to_numpy()[row]
    step = (end - start) / k
    # The first and last piece take the token's own times: start + step * k may miss end by an ulp.
    return (np.where(j == 0, start, start + step * j),
            np.where(j == k - 1, end, start + step * (j + 1)))


def _char_codes(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first, last, last content) code points and the one-letter flag of each piece."""
    encoded = pc.dictionary_encode(text)
    idx = encoded.indices.to_numpy()
    table = np.array([_codes(t) for t in encoded.dictionary.to_pylist()], dtype=np.int64).reshape(-1, 4)
    return table[idx, 0], table[idx, 1], table[idx, 2], table[idx, 3].astype(bool)


def _codes(piece: str) -> tuple[int, int, int, int]:
    content = [ch for ch in piece if ch.isalnum()]
    letter = len(piece) == 1 and piece.isascii() and piece.isalpha()
    return ord(piece[0]), ord(piece[-1]), ord(content[-1]) if content else _NO_CHAR, int(letter)


def _segment_numbers(tokens: pa.Table) -> np.ndarray:
    """0, 1, 2, ... per (recording_id, segment_index) run of a sorted table."""
    rec = pc.dictionary_encode(tokens["recording_id"].combine_chunks()).indices.to_numpy()
    seg = tokens["segment_index"].to_numpy()
    new = np.ones(len(seg), dtype=bool)
    new[1:] = (rec[1:] != rec[:-1]) | (seg[1:] != seg[:-1])
    return np.cumsum(new) - 1


def _word_starts(p: _Pieces) -> tuple[np.ndarray, np.ndarray]:
    """Whether each piece starts a word, and whether it is written in capitals (an abbreviation's
    letter), by the rules of ``stitcher.text.join_tokens``."""
    n = len(p.segment)
    first_in_segment = np.ones(n, dtype=bool)
    first_in_segment[1:] = p.segment[1:] != p.segment[:-1]
    after = ~first_in_segment  # pieces that have a previous piece in their segment
    subword_start = first_in_segment | ~np.roll(p.continues, 1)  # merge_subwords
    # A one-letter subword: the piece starts a subword and does not continue.
    single = subword_start & ~p.continues & p.letter
    abbreviation = after & single & np.roll(single, 1)  # merge_abbreviations: runs of single letters
    capitals = abbreviation | np.append(abbreviation[1:], False)  # each letter of a run, the first too
    unit_start = subword_start & ~abbreviation
    glued = after & unit_start & ~_split(p, after)
    return first_in_segment | (unit_start & ~glued), capitals


def _split(p: _Pieces, after: np.ndarray) -> np.ndarray:
    """Whether a space (or a CJK character on either side) separates each piece from the one before.

    Only meaningful where ``after`` is set. A piece without content (punctuation) is never split off
    for CJK's sake; the CJK test looks back past such pieces to the last character with content.
    """
    prev_last = np.roll(p.last_cp, 1)
    spaced = _pairwise(needs_space, prev_last, p.first_cp, after)
    has_content = p.content_cp != _NO_CHAR
    positions = np.where(has_content, np.arange(len(has_content)), -1)
    last_content = np.maximum.accumulate(positions)  # the latest piece with content, up to here
    before = np.roll(last_content, 1)
    before_cp = np.where((before >= 0) & (p.segment[np.maximum(before, 0)] == p.segment),
                         p.content_cp[np.maximum(before, 0)], _NO_CHAR)
    cjk_edge = has_content & (_cjk(p.first_cp) | _cjk(before_cp))
    return spaced | cjk_edge


def _pairwise(rule, left: np.ndarray, right: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``rule(chr(left), chr(right))`` where ``where`` is set, called once per distinct pair."""
    out = np.zeros(len(left), dtype=bool)
    if not where.any():
        return out
    pairs = np.stack([left[where], right[where]], axis=1)
    distinct, inverse = np.unique(pairs, axis=0, return_inverse=True)
    values = np.array([rule(chr(a), chr(b)) for a, b in distinct], dtype=bool)
    out[where] = values[inverse.reshape(-1)]
    return out


def _cjk(code_points: np.ndarray) -> np.ndarray:
    """``is_cjk`` of each code point (False for ``_NO_CHAR``), called once per distinct code point."""
    distinct, inverse = np.unique(code_points, return_inverse=True)
    values = np.array([cp != _NO_CHAR and is_cjk(chr(cp)) for cp in distinct], dtype=bool)
    return values[inverse.reshape(-1)]


def _assemble(tokens: pa.Table, p: _Pieces, starts: np.ndarray, capitals: np.ndarray) -> pa.Table:
    """One row per word: its pieces joined, the first piece's start and the last piece's end."""
    offsets = np.append(np.flatnonzero(starts), len(starts)).astype(np.int32)
    first, last = offsets[:-1], offsets[1:] - 1
    pieces = pc.if_else(pa.array(capitals, pa.bool_()), pc.utf8_upper(p.text), p.text)
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), pieces), "")
    segment = p.segment[first]
    word_index = np.arange(len(first)) - np.searchsorted(segment, segment, side="left")
    token_rows = pa.array(p.token_row[first])
    return pa.table({
        "recording_id": tokens["recording_id"].take(token_rows),
        "segment_index": pc.cast(tokens["segment_index"].take(token_rows), pa.int32()),
        "word_index": pa.array(word_index.astype(np.int32)), "word": text,
        "start_s": pa.array(p.start_s[first], pa.float64()), "end_s": pa.array(p.end_s[last], pa.float64()),
    }, schema=WORDS_SCHEMA)
