"""The vad stage: PCM cache, outcomes for good and bad files, resume, parallel workers, crashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from vadpack.core.cache import open_pcm, pcm_path
from vadpack.core.configtools import result_hash
from vadpack.core.fingerprint import file_content_id
from vadpack.core.types import RecordingRef
from vadpack.vad import stage as vad_stage
from vadpack.vad.config import VadConfig
from vadpack.vad.stage import ensure_pcm, largest_first, run_vad, segment_recording, sidecar_path

from tests.support.synthetic import synthetic_meeting

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
    # The content id is an opaque key to vad (scan makes it a hash of the bytes); here it is the stem,
    # so the tests can name cache files.
    return [RecordingRef(Path(n).stem.replace(".", "_"), str(root / n), Path(n).stem.replace(".", "_"))
            for n in names]


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

    monkeypatch.setattr(vad_stage, "decode_to_pcm", no_decoding)
    again = by_id(run_vad(archive[:3], cache, VadConfig(workers=1), progress=False))
    assert again == first
    # A different vad config re-segments the cached PCM, still without decoding.
    padded = by_id(run_vad(archive[:1], cache, VadConfig(workers=1, pad_s=0.4), progress=False))
    old, new = first["meeting"].segments, padded["meeting"].segments
    assert new[0].start_sample < old[0].start_sample
    assert json.loads(sidecar_path(cache, "meeting").read_text())["vad_hash"] == result_hash(
        VadConfig(pad_s=0.4))


def test_changed_content_is_decoded_again_and_renamed_content_is_not(tmp_path, archive, monkeypatch) -> None:
    cache = tmp_path / "pcm"
    list(run_vad(archive[2:3], cache, VadConfig(workers=1), progress=False))
    sf.write(archive[2].path, np.zeros(5 * SR, np.int16), SR, subtype="PCM_16")
    changed = RecordingRef(archive[2].recording_id, archive[2].path, file_content_id(archive[2].path))
    (outcome,) = run_vad([changed], cache, VadConfig(workers=1), progress=False)
    assert outcome.n_samples == 5 * SR
    # A renamed file keeps its content id: its cached audio and segments are reused, nothing decoded.
    moved = Path(archive[2].path).with_name("renamed.wav")
    os.rename(archive[2].path, moved)
    monkeypatch.setattr(vad_stage, "decode_to_pcm", lambda *a, **k: pytest.fail("decoded a renamed file"))
    (again,) = run_vad([RecordingRef("renamed", str(moved), changed.content_id)], cache, VadConfig(workers=1),
                       progress=False)
    assert again.recording_id == "renamed" and again.n_samples == 5 * SR


def test_force_decodes_again_and_keep_pcm_off_keeps_segments(tmp_path, archive, monkeypatch) -> None:
    cache = tmp_path / "pcm"
    (first,) = run_vad(archive[:1], cache, VadConfig(workers=1), progress=False)
    # With its PCM deleted (vad.keep_pcm: false), a recording keeps its segments without decoding.
    pcm_path(cache, archive[0].content_id).unlink()
    (kept,) = run_vad(archive[:1], cache, VadConfig(workers=1), progress=False)
    assert kept == first and not pcm_path(cache, archive[0].content_id).exists()
    assert ensure_pcm(archive[0], cache) is None  # ... and asr can bring its audio back
    np.testing.assert_array_equal(open_pcm(pcm_path(cache, archive[0].content_id))[:100],
                                  first_samples(archive[0].path))
    calls = []
    real = vad_stage.decode_to_pcm
    monkeypatch.setattr(vad_stage, "decode_to_pcm", lambda *a, **k: calls.append(a) or real(*a, **k))
    (forced,) = run_vad(archive[:1], cache, VadConfig(workers=1), progress=False, force=True)
    assert len(calls) == 1 and forced == first


def first_samples(path: str) -> np.ndarray:
    return sf.read(path, dtype="int16", frames=100)[0]


def test_worker_processes_give_the_same_outcomes_and_survive_a_crash(tmp_path, archive, monkeypatch) -> None:
    inline = by_id(run_vad(archive, tmp_path / "a", VadConfig(workers=1), progress=False))
    monkeypatch.setenv("VADPACK_FAULTS", "vad_worker_crash=silence")
    pooled = by_id(run_vad(archive, tmp_path / "b", VadConfig(workers=2), progress=False))
    assert set(pooled) == set(inline)
    assert "worker process crashed" in pooled["silence"].error
    for rid in set(inline) - {"silence"}:
        assert pooled[rid] == inline[rid]


def test_workers_take_the_largest_files_first(tmp_path: Path) -> None:
    sizes = {"a": 10, "b": 300, "c": 10, "d": 2000}
    refs = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"\0" * size)
        refs.append(RecordingRef(name, str(tmp_path / name), name))
    refs.append(RecordingRef("gone", str(tmp_path / "gone"), "gone"))
    assert [r.recording_id for r in largest_first(refs)] == ["d", "b", "a", "c", "gone"]  # ties keep their order
