"""A synthetic meeting of two real voices, with exact truth from the sample offsets.

Voice A is the LibriVox reader of ``en_pocketsphinx_librivox`` (each utterance cut to the speech
onset and offset of its human ``.lab`` file); voice B is John F. Kennedy in ``short_refs/jfk.flac``
(cut at its two longest pauses). Turns alternate A, B, A, B, A with ``pause_s`` of silence between
them. Short pauses (below the vad's ``min_silence_s``) keep two turns in one VAD segment, so the
speaker change has to be found inside the segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.audio import decode_int16

SR = 16_000
LIBRIVOX = ("0870", "0890", "0920")
JFK_PIECES_S = ((0.0, 4.8), (4.89, 11.0))  # its speech, split at the pause after "my fellow Americans"


@dataclass(frozen=True, slots=True)
class Meeting:
    """int16 samples and the truth: (start_sample, end_sample, voice) per turn, in time order."""

    pcm: np.ndarray
    turns: tuple[tuple[int, int, str], ...]


def _librivox(real: Path, utt: str) -> np.ndarray:
    stem = real / "en_pocketsphinx_librivox" / f"sense_and_sensibility_01_austen_64kb-{utt}"
    lines = (stem.with_suffix(".lab")).read_text().split("\n")
    onset, offset = float(lines[0].split()[0]), float(lines[1].split()[0])
    return decode_int16(str(stem.with_suffix(".wav")))[round(onset * SR): round(offset * SR)]


def two_voice_meeting(real: Path, pause_s: float = 0.5) -> Meeting:
    """Turns A B A B A of two clearly different voices, ``pause_s`` of digital silence between turns."""
    jfk = decode_int16(str(real / "short_refs" / "jfk.flac"))
    a = [_librivox(real, utt) for utt in LIBRIVOX]
    b = [jfk[round(s * SR): round(e * SR)] for s, e in JFK_PIECES_S]
    pieces = [(a[0], "A"), (b[0], "B"), (a[1], "A"), (b[1], "B"), (a[2], "A")]
    gap = np.zeros(round(pause_s * SR), dtype=np.int16)
    out, turns, pos = [], [], 0
    for i, (x, voice) in enumerate(pieces):
        if i:
            out.append(gap)
            pos += len(gap)
        out.append(x)
        turns.append((pos, pos + len(x), voice))
        pos += len(x)
    return Meeting(np.concatenate(out), tuple(turns))
