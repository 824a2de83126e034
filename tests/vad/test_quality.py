"""Quality at the default settings: real recordings with human labels, and synthetic meetings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio import decode_int16
from tests.support.scoring import grid_10ms, naive_regions
from tests.support.synthetic import synthetic_meeting
from vad.config import VadConfig
from vad.stage import segment_recording

SR = 16000
CELL = SR // 100  # scored on a 10 ms grid






@pytest.fixture(scope="module")
def human_labelled(real_data: Path) -> list[tuple[np.ndarray, list]]:
    labels = json.loads((real_data / "labels.json").read_text())
    files = [(name, v) for name, v in labels.items() if str(v.get("labels", "")).startswith("human")]
    assert len(files) >= 7
    return [(decode_int16(str(real_data / name)), v["speech_s"])
            for name, v in files]


def test_recall_and_precision_on_human_labels(human_labelled) -> None:
    tp = fp = fn = base_tp = base_fp = 0
    for pcm, truth in human_labelled:
        n = len(pcm) // CELL
        true = grid_10ms(truth, n)
        pred = grid_10ms([(a / SR, b / SR) for a, b in segment_recording(pcm, VadConfig())], n)
        base = grid_10ms(naive_regions(pcm), n)
        tp, fp, fn = tp + (true & pred).sum(), fp + (~true & pred).sum(), fn + (true & ~pred).sum()
        base_tp, base_fp = base_tp + (true & base).sum(), base_fp + (~true & base).sum()
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    assert recall >= 0.99
    assert precision >= 0.85
    assert precision > base_tp / (base_tp + base_fp)  # beats the naive baseline


def test_length_cap_cuts_fall_in_true_pauses() -> None:
    cuts = in_pause = 0
    for seed in (11, 12):
        meeting = synthetic_meeting(seed, n_turns=6, monologue_every=2)
        capped = segment_recording(meeting.pcm, VadConfig())
        uncapped = segment_recording(meeting.pcm, VadConfig(max_segment_s=600))
        assert all(b - a <= 30 * SR for a, b in capped)
        new_cuts = {a for a, _ in capped} - {a for a, _ in uncapped}
        cuts += len(new_cuts)
        in_pause += sum(meeting.in_pause(c) for c in new_cuts)
    assert cuts >= 4  # the monologues did need cutting
    assert in_pause / cuts >= 0.98
