"""The speakers stage through the whole pipeline CLI: real voices, real Resemblyzer weights, the tiny
Paraformer, exact truth from the synthetic meeting's sample offsets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from vadpack.pipeline.cli import main

import vadpack
from tests.conftest import write_config
from tests.speakers.meeting import SR, _librivox, two_voice_meeting

TABLES = ("documents", "segments", "tokens", "failures", "turns", "speakers")
# The meeting's turns are parted by 0.5 s of digital silence: boundary quietest puts each change in its
# pause (within 0.5 s); the default midpoint is only within a window hop (1.5 s with resemblyzer) of it.
SPEAKERS_ON = {"enabled": True, "device": "cpu", "boundary": "quietest"}
TOLERANCE_S = 0.5


def write_archive(root: Path, real: Path) -> tuple:
    """meeting.wav (voices A B A B A, 0.5 s pauses: one VAD segment), reader.wav (one voice) and
    silence.wav (no speech); returns the meeting's truth."""
    root.mkdir(parents=True)
    meeting = two_voice_meeting(real, pause_s=0.5)
    sf.write(root / "meeting.wav", meeting.pcm, SR, subtype="PCM_16")
    reader = np.concatenate([_librivox(real, "0880"), np.zeros(SR // 2, np.int16), _librivox(real, "0930")])
    sf.write(root / "reader.wav", reader, SR, subtype="PCM_16")
    sf.write(root / "silence.wav", np.zeros(SR * 2, np.int16), SR, subtype="PCM_16")
    return meeting.turns


def read(out: Path, name: str, recording_id: str | None = None) -> list[dict]:
    """A table's rows (of one recording when given), nulls as None."""
    rows = pq.read_table(out / f"{name}.parquet").to_pylist()
    return [r for r in rows if recording_id is None or r["recording_id"] == recording_id]


def file_of(out: Path, name: str) -> str:
    """The recording id of the input file ``name``."""
    [doc] = [d for d in read(out, "documents") if d["path"].endswith("/" + name)]
    return doc["recording_id"]


@pytest.fixture(scope="module")
def run(real_data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    pytest.importorskip("resemblyzer")
    tmp = tmp_path_factory.mktemp("speakers-run")
    truth = write_archive(tmp / "archive", real_data)
    cfg = write_config(tmp, [str(tmp / "archive")], tiny_model, speakers=SPEAKERS_ON,
                       stitch={"formats": ["srt", "vtt", "json", "txt"]})
    assert main(["run", str(cfg), "--no-progress"]) == 0
    return cfg, tmp / "work" / "output", truth


def test_two_voices_give_two_speakers_and_turns_that_change_in_the_pauses(run) -> None:
    _, out, truth = run
    rid = file_of(out, "meeting.wav")
    turns = sorted(read(out, "turns", rid), key=lambda t: t["turn_index"])
    assert [t["speaker"] for t in turns] == ["S1", "S2", "S1", "S2", "S1"]
    assert [t["turn_index"] for t in turns] == [0, 1, 2, 3, 4]
    # Every change of speaker lies in the pause between two true turns, give or take 0.5 s.
    for (prev, nxt), (a, b) in zip(zip(turns, turns[1:]), zip(truth, truth[1:])):
        lo, hi = a[1] / SR - TOLERANCE_S, b[0] / SR + TOLERANCE_S
        assert lo <= prev["end_s"] <= hi and lo <= nxt["start_s"] <= hi
    assert turns[0]["start_s"] <= truth[0][0] / SR + TOLERANCE_S
    assert turns[-1]["end_s"] >= truth[-1][1] / SR - TOLERANCE_S
    [doc] = read(out, "documents", rid)
    assert doc["n_speakers"] == 2
    talk = {r["speaker"]: (r["n_turns"], r["first_s"]) for r in read(out, "speakers", rid)}
    assert talk.keys() == {"S1", "S2"} and talk["S1"] == (3, 0.0) and talk["S2"][0] == 2


def test_one_voice_is_one_speaker_and_silence_has_none(run) -> None:
    _, out, _ = run
    docs = {d["path"].rsplit("/", 1)[1]: d["n_speakers"] for d in read(out, "documents")}
    assert docs == {"meeting.wav": 2, "reader.wav": 1, "silence.wav": 0}
    reader = file_of(out, "reader.wav")
    assert {t["speaker"] for t in read(out, "tokens", reader)} == {"S1"}
    assert read(out, "failures") == []


def test_tokens_segments_and_turns_agree_and_every_table_round_trips_through_duckdb(run) -> None:
    _, out, _ = run
    for name in TABLES:
        path = str(out / f"{name}.parquet")
        assert duckdb.execute("select count(*) from read_parquet(?)", [path]).fetchone()[0] == \
            pq.ParquetDataset(path).read().num_rows  # a table is a folder of part files
    # Invariant: a turn is a run of consecutive tokens of its speaker (DuckDB recomputes them).
    recount = duckdb.execute(f"""
        select recording_id, speaker, count(*) from (
            select recording_id, speaker,
                   speaker is distinct from lag(speaker) over w as starts
            from read_parquet('{out}/tokens.parquet')
            window w as (partition by recording_id order by start_s, segment_index, token_index))
        where starts group by all order by all""").fetchall()
    turns = duckdb.execute(f"""select recording_id, speaker, count(*) from read_parquet('{out}/turns.parquet')
                               group by all order by all""").fetchall()
    assert recount == turns
    segs = read(out, "segments")
    assert all(s["speaker"] in ("S1", "S2") for s in segs)
    # Talk time adds up to the speech of each recording (spans tile the segments).
    talk = dict(duckdb.execute(f"select recording_id, sum(talk_s) from read_parquet('{out}/speakers.parquet') "
                               "group by 1").fetchall())
    speech = {d["recording_id"]: d["speech_s"] for d in read(out, "documents") if d["speech_s"] > 0}
    assert talk.keys() == speech.keys() and all(abs(talk[r] - speech[r]) < 1e-6 for r in speech)


def test_exports_show_the_speakers(run) -> None:
    _, out, _ = run
    [srt] = (out / "srt").glob("meeting*.srt")
    cues = [line for line in srt.read_text().splitlines() if line.startswith("S")]
    assert {c.split(":", 1)[0] for c in cues} == {"S1", "S2"}
    [txt] = (out / "txt").glob("meeting*.txt")
    assert txt.read_text().splitlines()[0].startswith("S1: ")
    [vtt] = (out / "vtt").glob("meeting*.vtt")
    assert "\nS2: " in vtt.read_text()
    [js] = (out / "json").glob("meeting*.json")
    segment = json.loads(js.read_text())["segments"][0]
    assert {t["speaker"] for t in segment["tokens"]} == {"S1", "S2"} and segment["speaker"] == "S1"


def test_the_speakers_stage_reruns_alone_and_force_labels_again(run, capsys) -> None:
    cfg, out, _ = run
    before = {name: read(out, name) for name in ("turns", "speakers")}
    capsys.readouterr()
    assert main(["run", str(cfg), "--stage", "speakers", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "(speakers)" in said and "speakers       0 recordings labelled" in said  # the store had them
    assert main(["run", str(cfg), "--stage", "speakers", "--force", "--no-progress"]) == 0
    assert "speakers       2 recordings labelled" in capsys.readouterr().out
    # Forcing set aside the old labels and the tables made from them; transcripts are untouched.
    states = {s.stage: s.state for s in vadpack.status(cfg)}
    assert states == {"scan": "done", "vad": "done", "speakers": "done", "pack": "done", "asr": "done",
                      "stitch": "missing"}
    assert vadpack.run(cfg).stages_run == ("stitch",)
    assert {name: read(out, name) for name in ("turns", "speakers")} == before


def test_an_archive_that_changes_costs_only_its_own_embedding(tmp_path, real_data, tiny_model) -> None:
    pytest.importorskip("resemblyzer")
    archive = tmp_path / "archive"
    write_archive(archive, real_data)
    (archive / "reader.wav").rename(tmp_path / "reader.wav")
    cfg = write_config(tmp_path, [str(archive)], tiny_model, speakers=SPEAKERS_ON)
    out = tmp_path / "work" / "output"
    first = vadpack.run(cfg).summary.speakers
    # silence has no segments
    assert first is not None and (first.labelled_recordings, first.reused_recordings) == (1, 0)
    # A new file and a copy under another name: only the new file is embedded.
    shutil.move(tmp_path / "reader.wav", archive / "reader.wav")
    shutil.copy(archive / "meeting.wav", archive / "meeting-copy.wav")
    again = vadpack.run(cfg).summary.speakers
    assert again is not None and again.labelling is not None
    assert (again.labelled_recordings, again.reused_recordings) == (1, 1)
    reader = file_of(out, "reader.wav")
    assert again.labelling.windows == len([w for w in _windows(tmp_path, reader)])
    docs = {d["path"].rsplit("/", 1)[1]: d["n_speakers"] for d in read(out, "documents")}
    assert docs == {"meeting.wav": 2, "meeting-copy.wav": 2, "reader.wav": 1, "silence.wav": 0}
    # A deleted file leaves the turns and speakers tables too.
    gone = file_of(out, "meeting-copy.wav")
    (archive / "meeting-copy.wav").unlink()
    gone_run = vadpack.run(cfg).summary.speakers
    assert gone_run is None or gone_run.labelled_recordings == 0
    assert not [r for name in TABLES for r in read(out, name) if r.get("recording_id") == gone]
    assert {r["recording_id"] for r in read(out, "turns")} == {file_of(out, "meeting.wav"), reader}
    # prune drops the labels of contents no recording has any more, and keeps the rest.
    (archive / "reader.wav").unlink()
    vadpack.run(cfg)
    before = {name: read(out, name) for name in TABLES}
    assert vadpack.prune(cfg).files["unused speaker labels (rows)"] == 1  # reader.wav had one speaker span
    assert vadpack.run(cfg, stage="stitch").summary.get("failed_speakers") == 0
    assert {name: read(out, name) for name in TABLES} == before


def _windows(tmp_path: Path, recording_id: str) -> list:
    """The embedding windows of one recording's segments, at the default window and hop."""
    from vadpack.speakers.config import SpeakersConfig
    from vadpack.speakers.windows import window_bounds

    cfg = SpeakersConfig()
    segs = pq.read_table(tmp_path / "work" / "segments.parquet").to_pylist()
    return [w for s in segs if s["recording_id"] == recording_id
            for w in window_bounds(s["start_sample"], s["end_sample"], cfg.window_samples, cfg.hop_samples)]


def test_a_recording_without_an_embeddable_window_is_a_failure_and_is_retried(tmp_path, real_data, tiny_model,
                                                                             monkeypatch, capsys) -> None:
    pytest.importorskip("resemblyzer")
    write_archive(tmp_path / "archive", real_data)
    cfg = write_config(tmp_path, [str(tmp_path / "archive")], tiny_model, speakers=SPEAKERS_ON)
    out = tmp_path / "work" / "output"
    assert main(["run", str(cfg), "--stage", "scan", "--no-progress"]) == 0
    assert main(["run", str(cfg), "--stage", "vad", "--no-progress"]) == 0
    # Every window runs out of memory on its own: no recording gets a speaker.
    monkeypatch.setenv("VADPACK_FAULTS", "cuda_oom=0")
    assert main(["run", str(cfg), "--stage", "speakers", "--no-progress"]) == 0
    monkeypatch.delenv("VADPACK_FAULTS")
    assert main(["run", str(cfg), "--no-progress"]) == 3
    failures = read(out, "failures")
    assert sorted(f["path"].rsplit("/", 1)[1] for f in failures) == ["meeting.wav", "reader.wav"]
    assert all(f["stage"] == "speakers" and f["segment_index"] is None for f in failures)
    assert all("out of memory on its own" in f["error"] for f in failures)
    docs = {d["path"].rsplit("/", 1)[1]: d["n_speakers"] for d in read(out, "documents")}
    assert docs == {"meeting.wav": None, "reader.wav": None, "silence.wav": 0}
    # Unlabelled tokens make one turn per segment, as without speakers.
    segments = read(out, "segments")
    assert len(read(out, "turns")) == len(segments) and all(t["speaker"] is None for t in read(out, "turns"))
    # The failed recordings are labelled on the next speakers run (exit 3 still: failures.parquet is
    # stitch's, and stitch has not run yet).
    assert main(["run", str(cfg), "--stage", "speakers", "--no-progress"]) == 3
    assert main(["run", str(cfg), "--no-progress"]) == 0
    assert read(out, "failures") == [] and {d["n_speakers"] for d in read(out, "documents")} == {0, 1, 2}


def test_speakers_off_is_done_at_no_cost_and_says_so(tmp_path, small_archive, tiny_model) -> None:
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model)
    vadpack.run(cfg)
    [st] = [s for s in vadpack.status(cfg) if s.stage == "speakers"]
    assert (st.state, st.rows, st.reason) == ("done", 0, "off (speakers.enabled: false)")
    assert not list((tmp_path / "work" / "store").glob("speakers-*"))
    # Switching it on makes speakers stale (and stitch, which reads it), nothing else.
    states = {s.stage: s.state for s in vadpack.status(cfg, overrides=["speakers.enabled=true"])}
    assert [k for k, v in states.items() if v != "done"] == ["speakers", "stitch"]


def test_campp_backend_runs_offline_on_random_weights(tmp_path, real_data, tiny_model) -> None:
    from vadpack.speakers.campp import write_random_campp

    model = write_random_campp(tmp_path / "campp", seed=0)
    write_archive(tmp_path / "archive", real_data)
    cfg = write_config(tmp_path, [str(tmp_path / "archive")], tiny_model,
                       speakers={**SPEAKERS_ON, "backend": "campp", "model": str(model)})
    report = vadpack.run(cfg)
    assert report.failed == 0 and report.summary.speakers is not None
    assert report.summary.speakers.labelling is not None
    assert report.summary.speakers.labelling.backend == f"campp:{model}"
    out = tmp_path / "work" / "output"
    # Random weights: the labels mean nothing, but every token of speech has one.
    assert all(t["speaker"] and t["speaker"].startswith("S") for t in read(out, "tokens"))
    assert [p.name for p in (tmp_path / "work" / "store").glob("speakers-*")] != []
    key = json.loads(next((tmp_path / "work" / "store").glob("speakers-*/key.json")).read_text())
    assert key["backend"] == "campp" and key["model_id"].startswith("local:")


def test_switching_speakers_on_later_decodes_dropped_audio_again(tmp_path, real_data, tiny_model) -> None:
    pytest.importorskip("resemblyzer")
    write_archive(tmp_path / "archive", real_data)
    cfg = write_config(tmp_path, [str(tmp_path / "archive")], tiny_model, vad={"workers": 1, "keep_pcm": False})
    vadpack.run(cfg)
    pcm = tmp_path / "work" / "pcm"
    assert not list(pcm.glob("*.s16"))  # transcribed, so dropped
    report = vadpack.run(cfg, overrides=["speakers.enabled=true", "speakers.device=cpu"])
    assert report.stages_run == ("speakers", "stitch") and report.failed == 0
    docs = {d["path"].rsplit("/", 1)[1]: d["n_speakers"] for d in read(tmp_path / "work" / "output", "documents")}
    assert docs == {"meeting.wav": 2, "reader.wav": 1, "silence.wav": 0}
    assert not list(pcm.glob("*.s16"))  # labelled too now: dropped again


def test_turns_have_no_overlap_figure_without_segmentation(run) -> None:
    _, out, _ = run  # speakers.regions: auto, and the tests point the segmentation weights away: vad
    assert all(t["overlap"] is None for t in read(out, "turns"))


def test_trim_marks_overlapped_speech_in_turns(tmp_path, real_data, tiny_model, monkeypatch) -> None:
    """talk.wav: the LibriVox reader, with JFK starting 3 s before the reader stops (exact truth: 3 s
    of two voices at once, from the sample offsets); reader.wav: one voice. With ``regions: trim`` and
    the trained segmentation-3.0, the talk's turns carry about those 3 s of overlap and the reader's
    none; every figure lies inside its turn."""
    from tests.speakers.test_segmentation import TRAINED_SEGMENTATION

    if not (TRAINED_SEGMENTATION / "pytorch_model.bin").is_file():
        pytest.skip(f"no {TRAINED_SEGMENTATION}/pytorch_model.bin (run `make speaker-models`)")
    pytest.importorskip("resemblyzer")
    monkeypatch.setenv("VADPACK_SEGMENTATION_MODEL", str(TRAINED_SEGMENTATION))
    a = _librivox(real_data, "0890").astype(np.int32)
    from tests.support.audio import decode_int16

    b = decode_int16(str(real_data / "short_refs" / "jfk.flac"))[: round(4.8 * SR)].astype(np.int32)
    both = 3 * SR
    pcm = np.zeros(len(a) + len(b) - both, np.int32)
    pcm[: len(a)] += a
    pcm[len(a) - both:] += b
    root = tmp_path / "archive"
    root.mkdir()
    sf.write(root / "talk.wav", np.clip(pcm, -32768, 32767).astype(np.int16), SR, subtype="PCM_16")
    sf.write(root / "reader.wav", _librivox(real_data, "0880"), SR, subtype="PCM_16")
    cfg = write_config(tmp_path, [str(root)], tiny_model, speakers={**SPEAKERS_ON, "regions": "trim"})
    report = vadpack.run(cfg)
    assert report.failed == 0 and report.summary.speakers.labelling.regions == "trim"
    out = tmp_path / "work" / "output"
    talk, reader = read(out, "turns", file_of(out, "talk.wav")), read(out, "turns", file_of(out, "reader.wav"))
    assert all(0 <= t["overlap"] <= t["end_s"] - t["start_s"] + 1e-9 for t in talk + reader)
    assert 1.5 <= sum(t["overlap"] for t in talk) <= 3.5
    assert sum(t["overlap"] for t in reader) <= 0.2
