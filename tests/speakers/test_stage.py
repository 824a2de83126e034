"""The speakers stage end to end on real voices: the pipeline's VAD, real weights, exact truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from vadpack.core.cache import pcm_path
from vadpack.core.tables import SPEAKER_RESULTS
from vadpack.speakers.config import SpeakersConfig
from vadpack.speakers.stage import NO_WINDOWS, run_speakers
from vadpack.vad.config import VadConfig
from vadpack.vad.stage import segment_recording

from tests.speakers.meeting import SR, _librivox, two_voice_meeting

CFG = SpeakersConfig(enabled=True, device="cpu")
TOLERANCE_SAMPLES = SR // 2  # turn boundaries right to within 0.5 s where the change goes to the pause
# ``boundary: midpoint`` (the default) puts a change halfway between two window centres one hop apart, so it
# can be a hop from the pause when a window straddling the change takes the other voice
MIDPOINT_TOLERANCE_SAMPLES = CFG.hop_samples


def _archive(tmp_path: Path, recordings: dict[str, np.ndarray]) -> pa.Table:
    """Write each recording to the PCM cache and segment it with the pipeline's default VAD.

    The content id is the recording id here: the stage reads only content ids.
    """
    rows = []
    for rid, pcm in recordings.items():
        pcm.astype("<i2").tofile(pcm_path(tmp_path, rid))
        for i, (s, e) in enumerate(segment_recording(pcm, VadConfig())):
            rows.append({"recording_id": rid, "segment_index": i, "start_sample": s, "end_sample": e,
                         "content_id": rid})
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def result(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    pytest.importorskip("resemblyzer")
    cache = tmp_path_factory.mktemp("pcm")
    meeting = two_voice_meeting(real_data, pause_s=0.5)
    reader = np.concatenate([_librivox(real_data, "0880"), np.zeros(SR // 2, np.int16), _librivox(real_data, "0930")])
    segments = _archive(cache, {"meeting": meeting.pcm, "reader": reader})
    return meeting, segments, cache, run_speakers(segments, cache, CFG, progress=False)


def _spans(table: pa.Table, rid: str) -> list[tuple[int, int, str]]:
    rows = table.filter(pa.compute.equal(table["content_id"], rid))
    return list(zip(*(rows[c].to_pylist() for c in ("start_sample", "end_sample", "speaker"))))


def _check_changes(meeting, spans: list[tuple[int, int, str]], tolerance: int) -> None:
    assert [sp for _, _, sp in spans] == ["S1", "S2", "S1", "S2", "S1"]
    changes = [start for start, _, _ in spans[1:]]
    for change, (prev, nxt) in zip(changes, zip(meeting.turns, meeting.turns[1:])):
        # The change lies in the pause between two turns, give or take the tolerance.
        assert prev[1] - tolerance <= change <= nxt[0] + tolerance


def test_two_voices_alternating_give_two_speakers_with_boundaries_within_a_hop(result) -> None:
    meeting, segments, _, out = result
    # The pauses (0.5 s) are shorter than the vad's min_silence_s: all turns share one segment, so
    # every change is found inside it.
    assert segments.filter(pa.compute.equal(segments["recording_id"], "meeting")).num_rows == 1
    _check_changes(meeting, _spans(out.spans, "meeting"), MIDPOINT_TOLERANCE_SAMPLES)
    assert out.summary["speakers_per_recording"]["meeting"] == 2


def test_boundary_quietest_puts_each_change_in_the_pause_within_half_a_second(result) -> None:
    meeting, segments, cache, out = result
    quiet = run_speakers(segments, cache, replace(CFG, boundary="quietest"), progress=False)
    _check_changes(meeting, _spans(quiet.spans, "meeting"), TOLERANCE_SAMPLES)
    # Only where the changes go differs: the labels are the same.
    assert [sp for _, _, sp in _spans(quiet.spans, "meeting")] == [sp for _, _, sp in _spans(out.spans, "meeting")]


def test_spans_tile_the_speech_segments_exactly(result) -> None:
    _, segments, _, out = result
    assert out.spans.schema == SPEAKER_RESULTS and out.failures.schema == SPEAKER_RESULTS
    for rid in ("meeting", "reader"):
        spans = _spans(out.spans, rid)
        segs = segments.filter(pa.compute.equal(segments["recording_id"], rid))
        covered = sum(e - s for s, e, _ in spans)
        assert covered == sum(e - s for s, e in zip(segs["start_sample"].to_pylist(), segs["end_sample"].to_pylist()))
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_one_reader_is_one_speaker_and_nothing_failed(result) -> None:
    _, _, _, out = result
    assert {sp for _, _, sp in _spans(out.spans, "reader")} == {"S1"}
    assert out.failures.num_rows == 0
    assert out.summary["windows"] > 0 and out.summary["failed_windows"] == 0


def test_groups_of_recordings_and_small_batches_give_the_same_spans(result) -> None:
    meeting, segments, cache, out = result
    again = run_speakers(segments, cache, replace(CFG, group_windows=1, batch_windows=3, prefetch=1), progress=False)
    assert _spans(again.spans, "meeting") == _spans(out.spans, "meeting")
    assert _spans(again.spans, "reader") == _spans(out.spans, "reader")


def test_a_recording_without_audio_is_recorded_as_failed_not_dropped(result) -> None:
    _, segments, cache, out = result
    lost = pa.table({"recording_id": ["lost"], "segment_index": [0], "start_sample": [0], "end_sample": [SR * 4],
                     "content_id": ["lost"]})
    both = pa.concat_tables([segments, lost.cast(segments.schema)])
    res = run_speakers(both, cache, CFG, progress=False)
    assert _spans(res.spans, "meeting") == _spans(out.spans, "meeting")
    # One row for the recording, not one per window: the first window's error says what to fix.
    [row] = res.failures.to_pylist()
    assert (row["content_id"], row["start_sample"], row["end_sample"], row["status"]) == ("lost", None, None,
                                                                                          "failed")
    assert row["error"].startswith(NO_WINDOWS) and "FileNotFoundError" in row["error"]
    assert res.summary["failed_recordings"] == 1 and res.summary["failed_windows"] == 2


def test_a_window_that_fails_is_a_row_and_its_recording_keeps_its_speakers(result) -> None:
    meeting, segments, cache, _ = result
    # The cache file of a copy ends 1 s early: the last windows of its last segment cannot be read.
    end = int(segments.filter(pa.compute.equal(segments["recording_id"], "meeting"))["end_sample"][-1].as_py())
    meeting.pcm[: end - SR].astype("<i2").tofile(pcm_path(cache, "short"))
    short = segments.filter(pa.compute.equal(segments["recording_id"], "meeting"))
    short = short.set_column(short.schema.get_field_index("content_id"), "content_id",
                             pa.array(["short"] * short.num_rows))
    res = run_speakers(short, cache, CFG, progress=False)
    failed = res.failures.to_pylist()
    assert failed and all(r["end_sample"] > end - SR and "outside" in r["error"] for r in failed)
    assert {sp for _, _, sp in _spans(res.spans, "short")} == {"S1", "S2"}
