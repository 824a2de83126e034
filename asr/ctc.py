"""CTC decoding of one item: greedy tokens, exact forced alignment, and token times in milliseconds.

These are pure functions on one item's log-probabilities (frames x vocabulary), so that the model
family that uses them (SenseVoice) decodes every item of a batch from its own frames only.

Greedy decoding and forced alignment fit together: the greedy path (the best id in every frame)
is a valid CTC alignment of its own collapsed tokens, and no alignment can score higher than the
per-frame maxima, so it *is* the forced (Viterbi) alignment of those tokens. ``greedy_runs``
therefore gives tokens and their frames in one vectorised pass, and ``forced_align`` (the Viterbi
search) is needed only when the tokens to align are not the greedy ones, e.g. after tags were taken
out of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TokenSpan:
    """One CTC token and the frames it occupies in an alignment.

    Attributes:
        token_id: the vocabulary id.
        start_frame: first frame of the token.
        end_frame: one past its last frame.
    """

    token_id: int
    start_frame: int
    end_frame: int


def greedy_runs(frame_ids: np.ndarray, blank: int) -> list[TokenSpan]:
    """Greedy CTC tokens with their frames: each run of one non-blank id in the per-frame best ids.

    A repeated id separated by a blank gives two tokens; a run of one id gives one token.

    Args:
        frame_ids: (frames,) the best id of each frame.
        blank: the blank id.
    """
    ids = np.asarray(frame_ids).reshape(-1)
    if ids.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], ids.size]
    return [TokenSpan(int(ids[s]), int(s), int(e)) for s, e in zip(starts, ends) if ids[s] != blank]


def forced_align(log_probs: np.ndarray, targets: Sequence[int], blank: int) -> list[TokenSpan]:
    """The most likely CTC alignment of ``targets`` (Viterbi), as each target's frames.

    Args:
        log_probs: (frames, vocabulary) log-probabilities of one item, its own frames only.
        targets: the token ids to align, in order, without blanks.
        blank: the blank id.

    Returns:
        One span per target, in order.

    Raises:
        ValueError: the targets cannot be aligned to that many frames (a repeated id needs a blank
            frame between its two copies).
    """
    if not len(targets):
        return []
    ext = np.full(2 * len(targets) + 1, blank, dtype=np.int64)  # blank, t0, blank, t1, ..., blank
    ext[1::2] = targets
    emit = np.asarray(log_probs, dtype=np.float64)[:, ext]
    back, final = _viterbi(emit, _may_skip(ext))
    last = len(ext) - 1 if final[-1] >= final[-2] else len(ext) - 2
    if not np.isfinite(final[last]):
        raise ValueError(f"cannot align {len(targets)} tokens to {len(emit)} frames")
    states = _backtrack(back, last)
    return _spans(states, ext)


def _may_skip(ext: np.ndarray) -> np.ndarray:
    """Where a path may jump over the blank before a token: into a token that differs from the last."""
    skip = np.zeros(len(ext), dtype=bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    return skip


def _viterbi(emit: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Back-pointers (frames, states) and the final scores of the best path into each state."""
    n_frames, n_states = emit.shape
    score = np.full(n_states, -np.inf)
    score[:2] = emit[0, :2]  # a path starts in the first blank or the first token
    back = np.zeros((n_frames, n_states), dtype=np.int8)
    for t in range(1, n_frames):
        from_prev = np.r_[-np.inf, score[:-1]]
        from_skip = np.where(skip, np.r_[-np.inf, -np.inf, score[:-2]], -np.inf)
        cand = np.stack((score, from_prev, from_skip))
        # The back-pointer is the step back: 0 (stay), 1 (from s - 1) or 2 (skip a blank). On a tie
        # argmax stays, so a path leaves a state as late as it can, whatever the platform.
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + emit[t]
    return back, score


def _backtrack(back: np.ndarray, last: int) -> np.ndarray:
    states = np.empty(len(back), dtype=np.int64)
    states[-1] = last
    for t in range(len(back) - 1, 0, -1):
        states[t - 1] = states[t] - back[t, states[t]]
    return states


def _spans(states: np.ndarray, ext: np.ndarray) -> list[TokenSpan]:
    """The frames of each token state (odd states) along an alignment path."""
    spans = []
    for state in range(1, len(ext), 2):
        frames = np.flatnonzero(states == state)
        assert frames.size, "a valid CTC path visits every token state"
        spans.append(TokenSpan(int(ext[state]), int(frames[0]), int(frames[-1]) + 1))
    return spans


def frame_span_ms(span: TokenSpan, frame_ms: int, segment_ms: int) -> tuple[int, int]:
    """Start and end of a token in ms relative to the segment, clamped to [0, segment_ms].

    Frame ``j`` is taken to be centred at ``j * frame_ms``: a token on frames [s, e) spans
    ``[s * frame_ms - frame_ms / 2, e * frame_ms - frame_ms / 2]``, as FunASR's SenseVoice writes
    it. (An LFR frame of 7 fbank frames, hop 60 ms, is centred at ``60 j + 12.5`` ms of audio, so
    the convention is 12.5 ms early: a fifth of a frame, below the resolution of the model.) The
    first token starts at 0 at the earliest, and the last frame can reach up to 15 ms past the
    end of the audio, hence the clamps.
    """
    half = frame_ms // 2
    start = min(max(span.start_frame * frame_ms - half, 0), segment_ms)
    end = min(max(span.end_frame * frame_ms - half, start), segment_ms)
    return start, end
