"""Script-aware text from model tokens: subword merging and spacing between scripts.

Shared by asr (each segment's text, joined once while the model runs) and the stitcher (documents,
sentences, words).

The rules follow FunASR's ``sentence_postprocess`` (funasr/utils/postprocess_utils.py) for
Paraformer tokens:

- ``<blank>``, ``<s>``, ``</s>``, ``<unk>``, ``<OOV>`` are dropped.
- A token ending in ``@@`` continues into the next token with no space (``hel@@ lo`` -> ``hello``).
- CJK characters are written without spaces, also next to CJK punctuation.
- Latin words are separated by one space.
- Between a Latin word and a CJK character there is no space, on either side, as FunASR writes
  mixed zh/en (``你好hello世界``).
- A run of two or more single-letter Latin words is an abbreviation and is written in capitals
  with no spaces (``i b m`` -> ``IBM``), as FunASR's ``abbr_dispose`` does.

Deviations from FunASR, on purpose:

- With timestamps FunASR joins *all* words with spaces (``你 好 世 界``); here the text is the same
  with or without timestamps.
- FunASR treats digits as CJK, so it never puts a space next to a digit (``in2024``). Here digits
  glue to digits and to CJK (``第2024年``) but are spaced from Latin words (``in 2024``).
- FunASR leaves a space before Latin punctuation that follows a word (``hello ,``); here
  ``. , ! ? ; : % ) ] }`` attach to the word before and a space follows them before a letter.
- Hangul and other space-delimited letters are spaced like Latin; FunASR has no rule for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

SPECIAL_TOKENS = frozenset({"<blank>", "<s>", "</s>", "<unk>", "<OOV>"})
SUBWORD_MARK = "@@"
_NO_SPACE_BEFORE = frozenset(".,!?;:%)]}…")
_NO_SPACE_AFTER = frozenset("([{")
# Code point ranges written without spaces: CJK radicals, symbols and punctuation, kana, bopomofo,
# ideographs (with extensions and compatibility forms), CJK compatibility forms, full-width forms.
_CJK_RANGES = ((0x2E80, 0x2FDF), (0x3000, 0x312F), (0x31A0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
               (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3134F))


@lru_cache(maxsize=1 << 16)  # vocabularies are small: each character is classified once
def is_cjk(ch: str) -> bool:
    """True for a character of a script written without spaces between words (Chinese, Japanese)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_word_char(ch: str) -> bool:
    # Apostrophe counts as a letter, as in FunASR's isAllAlpha ("don't", "'s").
    return (ch.isalnum() or ch == "'") and not is_cjk(ch)


@lru_cache(maxsize=1 << 18)  # millions of token joins per archive, few distinct character pairs
def needs_space(left: str, right: str) -> bool:
    """Whether one space goes between a piece ending in ``left`` and one starting with ``right``.

    Args:
        left: last character of the text so far.
        right: first character of the next piece.
    """
    if is_cjk(left) or is_cjk(right) or right in _NO_SPACE_BEFORE or left in _NO_SPACE_AFTER:
        return False
    if _is_word_char(left) and _is_word_char(right):
        return not (left.isdigit() and right.isdigit())  # "2", "0" -> "20": digits come one per token
    # "hello, world", but "3.5" stays a number.
    return left in _NO_SPACE_BEFORE and right.isalpha()


def join_tokens(tokens: Iterable[str]) -> str:
    """Join model tokens into text: specials dropped, ``@@`` merged, spaces by script.

    Args:
        tokens: tokens as the model wrote them, in order.

    Returns:
        The text, with no leading or trailing space.

    Examples:
        >>> join_tokens(["你", "好", "hel@@", "lo", "world", "</s>"])
        '你好hello world'
    """
    words = merge_subwords(t.strip() for t in tokens if t.strip() not in SPECIAL_TOKENS)
    return _join_pieces(_merge_abbreviations(words))


def merge_subwords(tokens: Iterable[str]) -> list[str]:
    """Merge each token ending in ``@@`` with the token after it; a trailing ``@@`` is just removed."""
    words: list[str] = []
    pending = ""
    for tok in tokens:
        if tok.endswith(SUBWORD_MARK):
            pending += tok[: -len(SUBWORD_MARK)]
        else:
            words.append(pending + tok)
            pending = ""
    words.append(pending)
    return [w for w in words if w]


def _merge_abbreviations(words: list[str]) -> list[str]:
    """Write runs of two or more single ASCII letters as one upper-case word (FunASR's abbr_dispose)."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:  # the empty sentinel flushes the last run
        if len(word) == 1 and word.isascii() and word.isalpha():
            run.append(word)
            continue
        out.extend(["".join(run).upper()] if len(run) >= 2 else run)
        run = []
        if word:
            out.append(word)
    return out


def _join_pieces(pieces: Iterable[str]) -> str:
    parts: list[str] = []
    for piece in pieces:
        if parts and needs_space(parts[-1][-1], piece[0]):
            parts.append(" ")
        parts.append(piece)
    return "".join(parts)


def join_segments(texts: Sequence[str | None]) -> str:
    """Join the texts of consecutive segments into one document text.

    A space goes between two segments only where ``needs_space`` says so, e.g. between two Latin
    words; CJK text runs on. Empty and None texts (failed segments) are skipped.
    """
    return _join_pieces(t for t in (" ".join((text or "").split()) for text in texts) if t)
