"""The vad stage: PCM cache, outcomes for good and bad files, resume, parallel workers, crashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import vad.stage
from core.cache import open_pcm, pcm_path
from core.configtools import result_hash
from core.types import RecordingRef
from tests.support.synthetic import synthetic_meeting
from vad.config import VadConfig
from vad.stage import run_vad, segment_recording, sidecar_path

SR = 16000


@pytest.fixture(scope="module")
def meeting():
    return synthetic_meeting(seed=1, n_turns=4, monologue_every=3)  # about 1.5 min, one monologue


@pytest.fixture()
def archive(tmp_path: Path, meeting) -> list[RecordingRef]:
    root = tmp_path / "in"
    root.mkdir()
    sf.write(root / "meeting.wav", meeting.pcm, SR, subtype="PCM_16")
    # Stereo at 44.1 kHz: 441000 frames, 10 s.
    sf.write(root / "meeting44k.flac", np.stack([meeting.pcm[:441000]] * 2, axis=1), 44100)
    sf.write(root / "silence.wav", np.zeros(3 * SR, np.int16), SR, subtype="PCM_16")
    (root / "notes.mp3").write_text("this is a text file, not audio\n")
    (root / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    names = ["meeting.wav", "meeting44k.flac", "silence.wav", "notes.mp3", "noise.wav"]
    return [RecordingRef(Path(n).stem.replace(".", "_"), str(root / n)) for n in names]


def by_id(outcomes) -> dict:
    return {o.recording_id: o for o in outcomes}


def test_every_recording_gets_an_outcome_and_bad_files_do_not_stop_the_stage(tmp_path, archive, meeting) -> None:
    cache = tmp_path / "pcm"
    out = by_id(run_vad(archive, cache, VadConfig(workers=1), progress=False))
    assert set(out) == {r.recording_id for r in archive}
    assert "not an audio file" in out["notes"].error and out["notes"].segments == ()
    assert "not an audio file" in out["noise"].error
    assert out["silence"].error is None and out["silence"].segments == () and out["silence"].n_samples == 3 * SR
    good = out["meeting"]
    assert good.error is None and good.n_samples == len(meeting.pcm)
    assert [s.segment_index for s in good.segments] == list(range(len(good.segments)))
    assert [(s.start_sample, s.end_sample) for s in good.segments] == segment_recording(meeting.pcm, VadConfig())
    np.testing.assert_array_equal(open_pcm(pcm_path(cache, "meeting")), meeting.pcm)
    assert out["meeting44k"].n_samples == 10 * SR
    assert not pcm_path(cache, "notes").exists() and not sidecar_path(cache, "notes").exists()
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]


def test_rerun_reuses_the_cache_and_only_redoes_vad_when_its_config_changes(tmp_path, archive, monkeypatch) -> None:
    cache = tmp_path / "pcm"
    first = by_id(run_vad(archive[:3], cache, VadConfig(workers=1), progress=False))

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached recording was decoded again")

    monkeypatch.setattr(vad.stage, "decode_to_pcm", no_decoding)
    again = by_id(run_vad(archive[:3], cache, VadConfig(workers=1), progress=False))
    assert again == first
    # A different vad config re-segments the cached PCM, still without decoding.
    padded = by_id(run_vad(archive[:1], cache, VadConfig(workers=1, pad_s=0.4), progress=False))
    old, new = first["meeting"].segments, padded["meeting"].segments
    assert new[0].start_sample < old[0].start_sample
    assert json.loads(sidecar_path(cache, "meeting").read_text())["vad_hash"] == result_hash(
        VadConfig(pad_s=0.4))


def test_changed_source_file_is_decoded_again(tmp_path, archive) -> None:
    cache = tmp_path / "pcm"
    list(run_vad(archive[2:3], cache, VadConfig(workers=1), progress=False))
    sf.write(archive[2].path, np.zeros(5 * SR, np.int16), SR, subtype="PCM_16")
    os.utime(archive[2].path, ns=(1, 1))
    (outcome,) = run_vad(archive[2:3], cache, VadConfig(workers=1), progress=False)
    assert outcome.n_samples == 5 * SR


def test_worker_processes_give_the_same_outcomes_and_survive_a_crash(tmp_path, archive, monkeypatch) -> None:
    inline = by_id(run_vad(archive, tmp_path / "a", VadConfig(workers=1), progress=False))
    monkeypatch.setenv("VADPACK_FAULTS", "vad_worker_crash=silence")
    pooled = by_id(run_vad(archive, tmp_path / "b", VadConfig(workers=2), progress=False))
    assert set(pooled) == set(inline)
    assert "worker process crashed" in pooled["silence"].error
    for rid in set(inline) - {"silence"}:
        assert pooled[rid] == inline[rid]
