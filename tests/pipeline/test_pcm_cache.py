"""The decoded-audio cache's default (``vad.keep_pcm: auto`` under ``vad.pcm_limit_gb``) and the run
summary's line about a cache past the limit, on real files of a tiny archive."""

from __future__ import annotations

from pathlib import Path

from vadpack.pipeline.cli import EXIT_PARTIAL, main

import vadpack
from tests.conftest import write_config
from tests.support.outputs import snapshot


def run(*args: str) -> None:
    """``vadpack run``: the archive's text file named .mp3 fails scan, so the exit code says "partial"."""
    assert main(["run", *args, "--no-progress"]) == EXIT_PARTIAL


def cache_bytes(work: Path) -> int:
    return sum(p.stat().st_size for p in (work / "pcm").glob("*.s16"))


def test_auto_keeps_the_cache_under_the_limit_and_the_summary_says_nothing(tmp_path, small_archive, tiny_model,
                                                                           capsys) -> None:
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model)  # keep_pcm and pcm_limit_gb left out
    run(str(cfg))
    out = capsys.readouterr().out
    # 3 example recordings and a 3 s silence: every one keeps its 16 kHz int16 PCM (2 bytes a sample).
    assert len(list((tmp_path / "work" / "pcm").glob("*.s16"))) == 4
    assert cache_bytes(tmp_path / "work") > 3 * 16000 * 2
    assert "pcm cache" not in out


def test_keep_pcm_true_past_the_limit_keeps_it_and_the_summary_gives_its_size(tmp_path, small_archive, tiny_model,
                                                                              capsys) -> None:
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model, vad={"keep_pcm": True, "pcm_limit_gb": 0.0001})
    report = vadpack.run(cfg)
    n = cache_bytes(tmp_path / "work")
    assert n > 0.0001e9  # the three examples hold more than 100 kB of PCM
    assert report.summary.pcm_cache_bytes == n
    capsys.readouterr()
    run(str(cfg))  # up to date: the line is there all the same
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("pcm cache"))
    assert f"{n / 1e6:.1f} MB = {n / 32000 / 3600:.1f} h of audio (vad.keep_pcm: true)" in line
    assert "past vad.pcm_limit_gb: 0.0001" in line
    # Just above the cache's size, the same cache is not large: no line.
    limit = (n + 1) / 1e9
    run(str(cfg), "-o", f"vad.pcm_limit_gb={limit}")
    assert "pcm cache" not in capsys.readouterr().out
    assert cache_bytes(tmp_path / "work") == n


def test_auto_past_the_limit_drops_finished_pcm_and_a_rerun_decodes_it_again(tmp_path, small_archive, tiny_model,
                                                                            capsys) -> None:
    (tmp_path / "kept").mkdir()
    kept = write_config(tmp_path / "kept", [str(small_archive)], tiny_model, vad={"keep_pcm": True})
    vadpack.run(kept)
    cfg = write_config(tmp_path, [str(small_archive)], tiny_model, vad={"pcm_limit_gb": 0.0001})
    first = vadpack.run(cfg)
    pcm = tmp_path / "work" / "pcm"
    assert not list(pcm.glob("*.s16")) and list(pcm.glob("*.vad.json"))  # all transcribed: all dropped
    assert first.summary.pcm_cache_bytes is None  # nothing left past the limit
    out = tmp_path / "work" / "output"
    assert snapshot(out) == snapshot(tmp_path / "kept" / "work" / "output")
    # Rerunning asr alone needs the audio: it is decoded again (in 2 worker processes), and the
    # tables are the same.
    capsys.readouterr()
    run(str(cfg), "--stage", "asr", "--force", "asr", "-o", "vad.workers=2")
    assert f"decoded        {first.summary.segments} segments" in capsys.readouterr().out
    assert not list(pcm.glob("*.s16"))  # finished again, past the limit again: dropped
    run(str(cfg))
    assert snapshot(out) == snapshot(tmp_path / "kept" / "work" / "output")
