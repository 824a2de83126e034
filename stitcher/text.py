"""Sentences for subtitle cues: timed tokens split at pauses, each joined script-aware (``core.text``)."""

from __future__ import annotations

from collections.abc import Sequence

from vadpack.core.text import SPECIAL_TOKENS, SUBWORD_MARK, join_tokens
from vadpack.stitcher.types import Sentence, TokenTime

# Token times have millisecond resolution; compare pauses with a tolerance far below that, so that
# a pause of 1.2 - 0.4 s counts as the 0.8 s it is (in floats it is 0.7999999999999999).
_GAP_TOLERANCE_S = 1e-6


def split_sentences(tokens: Sequence[TokenTime], gap_s: float) -> list[Sentence]:
    """Split timed tokens into sentences at every pause of at least ``gap_s`` seconds.

    A pause after a token ending in ``@@`` does not split, since that would cut a word in two. A
    change of speaker always splits: a cue is one person's words. Special tokens are left out.
    Tokens are taken in the order given (the stitcher sorts by time).

    Args:
        tokens: tokens with absolute times.
        gap_s: shortest pause, ``next.start_s - previous.end_s``, that starts a new sentence.

    Returns:
        The sentences in order; empty when there are no tokens with text.

    Raises:
        ValueError: when ``gap_s`` is negative.
    """
    if gap_s < 0:
        raise ValueError(f"gap_s = {gap_s!r} must be >= 0 (stitch.sentence_gap_s)")
    groups: list[list[TokenTime]] = []
    for tok in tokens:
        if not tok.token.strip() or tok.token.strip() in SPECIAL_TOKENS:
            continue
        last = groups[-1][-1] if groups else None
        in_word = last is not None and last.token.strip().endswith(SUBWORD_MARK)
        if last is None or last.speaker != tok.speaker or (
                tok.start_s - last.end_s >= gap_s - _GAP_TOLERANCE_S and not in_word):
            groups.append([])
        groups[-1].append(tok)
    sentences = [Sentence(text=join_tokens(t.token for t in group), start_s=group[0].start_s,
                          end_s=max(t.end_s for t in group), tokens=tuple(group), speaker=group[0].speaker)
                 for group in groups]
    return [s for s in sentences if s.text]
