"""What the inputs name: containers with an audio track, globs filtered like folders, file lists,
skipped side files named, a missing input stopping the run, and failed inputs named at the end."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import duckdb
import numpy as np
import soundfile as sf
from vadpack.pipeline.cli import main
from vadpack.pipeline.config import config_from_dict
from vadpack.scan.stage import list_inputs

from tests.conftest import write_config
from tests.test_reliability import speechy

SR = 16000


def write_mkv(path: Path, seconds: float) -> None:
    """A Matroska file as a meeting recorder writes one: a video stream and a FLAC audio stream."""
    pcm = (speechy(seconds) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("flac", rate=SR)
        audio.layout = "mono"
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
        for start in range(0, len(pcm), 1600):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 1600], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SR, start, Fraction(1, SR)
            out.mux(audio.encode(frame))
        out.mux(video.encode())
        out.mux(audio.encode())


def build_inputs(root: Path) -> dict[str, Path]:
    """A folder with an .mkv and side files, a glob folder with side files, and a list file."""
    meetings, calls, lists = root / "meetings", root / "calls", root / "lists"
    for folder in (meetings, calls, lists):
        folder.mkdir(parents=True)
    write_mkv(meetings / "standup.mkv", 4.0)
    for folder in (meetings, calls):  # side files a diarization or an export left beside the audio
        (folder / "standup.rttm").write_text("SPEAKER standup 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n")
        (folder / "standup.json").write_text("{}")
    sf.write(calls / "call1.wav", speechy(3.0, seed=1), SR)
    sf.write(root / "listed.flac", speechy(3.0, seed=2), SR)
    # One path a line, relative to the list's folder; comments and blank lines are skipped; a listed
    # file that does not exist is data, not a config mistake: it becomes a failure row.
    (lists / "batch.txt").write_text("# this week's extra recordings\n\n../listed.flac\n../gone.wav\n")
    return {"mkv": meetings / "standup.mkv", "wav": calls / "call1.wav", "listed": root / "listed.flac",
            "gone": root / "gone.wav", "folder": meetings, "glob": calls / "*", "list": lists / "batch.txt"}


def test_listing_applies_the_audio_filter_everywhere(tmp_path):
    p = build_inputs(tmp_path)
    cfg = config_from_dict({"inputs": [str(p["folder"]), str(p["glob"]), str(p["list"])],
                            "work_dir": str(tmp_path / "work")})
    listing = list_inputs(cfg.inputs, cfg.base_dir, cfg.not_inputs)
    assert listing.paths == tuple(sorted(str(p[k]) for k in ("mkv", "wav", "listed", "gone")))
    assert listing.errors == ()
    assert sorted(Path(s).name for s in listing.skipped) == ["standup.json", "standup.json", "standup.rttm",
                                                             "standup.rttm"]


def test_mkv_glob_and_list_through_the_pipeline(tmp_path, tiny_model, capsys):
    p = build_inputs(tmp_path)
    cfg = write_config(tmp_path, [str(p["folder"]), str(p["glob"]), str(p["list"])], tiny_model)
    assert main(["run", str(cfg), "--no-progress"]) == 3  # the listed file that does not exist failed
    out = tmp_path / "work" / "output"
    docs = dict(duckdb.execute("select path, n_segments from read_parquet(?)", [str(out / "documents.parquet")])
                .fetchall())
    assert set(docs) == {str(p["mkv"]), str(p["wav"]), str(p["listed"])}
    assert docs[str(p["mkv"])] >= 1  # the audio track of the video container was transcribed
    fails = duckdb.execute("select path, stage, error from read_parquet(?)", [str(out / "failures.parquet")]).fetchall()
    assert fails == [(str(p["gone"]), "scan", "file not found (or a broken symlink): check the inputs list")]
    stdout, stderr = capsys.readouterr()
    # The side files were skipped, counted and named in the log, not turned into failures.
    assert "scan: skipped 4 files that are not audio by their suffix" in stderr and "standup.rttm" in stderr
    # The summary names the failed input, its reason, and where all the failures are.
    assert f"failed         1 (every one with its reason in {out / 'failures.parquet'}):" in stdout
    assert f"  {p['gone']} (scan): file not found" in stdout


def test_summary_lists_the_first_ten_failures_then_a_count(tmp_path, tiny_model, capsys):
    root = tmp_path / "bad"
    root.mkdir()
    for i in range(12):
        (root / f"notes{i:02d}.mp3").write_text("not audio\n")
    sf.write(root / "ok.wav", speechy(2.0), SR)
    cfg = write_config(tmp_path, [str(root)], tiny_model)
    assert main(["run", str(cfg), "--no-progress"]) == 3
    stdout = capsys.readouterr().out
    listed = [line for line in stdout.splitlines() if line.startswith(f"  {root}")]
    assert len(listed) == 10 and listed[0].startswith(f"  {root / 'notes00.mp3'} (scan): not an audio file")
    assert "  ... and 2 more" in stdout


def test_missing_input_folder_stops_before_any_stage(tmp_path, tiny_model, capsys):
    cfg = write_config(tmp_path, [str(tmp_path / "recordings")], tiny_model)
    assert main(["run", str(cfg), "--no-progress"]) == 2
    assert f"input '{tmp_path / 'recordings'}' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "work" / "recordings.parquet").exists()
