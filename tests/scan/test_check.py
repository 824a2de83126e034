"""scan.check: the inputs' mistakes as one line each, from the inputs, their base folder and the folders
that are never input (not the run's config)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from vadpack.scan.check import check
from vadpack.scan.stage import list_inputs


def test_relative_inputs_resolve_against_the_base_folder(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", np.zeros(1600, np.float32), 16000)
    warnings: list[str] = []
    assert check(["in", "gone.wav"], tmp_path, warnings=warnings) == [
        f"input 'gone.wav' does not exist (resolved to {tmp_path / 'gone.wav'}); fix the path in inputs"]
    assert list_inputs(["in"], tmp_path).paths == (str(tmp_path / "in" / "a.wav"),)


def test_an_excluded_folder_is_named_by_its_key_and_never_listed(tmp_path) -> None:
    (tmp_path / "in" / "work").mkdir(parents=True)
    sf.write(tmp_path / "in" / "work" / "cache.wav", np.zeros(1600, np.float32), 16000)
    work = tmp_path / "in" / "work"
    assert check([str(tmp_path / "in")], tmp_path, {"work_dir": work}) == [
        f"work_dir {work} is inside the input folder {tmp_path / 'in'}: vadpack would rescan its own cache as "
        "input. Put work_dir outside the input folders."]
    warnings: list[str] = []
    assert check([str(tmp_path / "in" / "*" / "*.wav")], tmp_path, {"work_dir": work}, warnings) == [
        f"input glob {str(tmp_path / 'in' / '*' / '*.wav')!r} matches no audio file; check the pattern"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check([str(empty)], tmp_path, warnings=warnings) == [
        f"inputs {[str(empty)]} hold no audio file; give audio files, folders, globs or a .txt list"]
    assert warnings == [f"input folder {str(empty)!r} holds no audio file"]


def test_a_folder_scan_lists_files_and_links_and_skips_what_lies_in_an_excluded_folder(tmp_path) -> None:
    """The folder walk by hand: nested files in path order, a folder named like audio walked, links to
    a file, to a folder and broken ones listed (not followed), side files skipped, and a link into the
    work_dir left out (it resolves into an excluded folder)."""
    root, work = tmp_path / "in", tmp_path / "work"
    for d in ("b/c", "talk.wav", "a-b"):
        (root / d).mkdir(parents=True)
    work.mkdir()
    tone = np.zeros(1600, np.float32)
    for f in ("b/c/2.wav", "b/1.FLAC", "talk.wav/x.mp3", "a-b/z.wav", "top.wav", work / "cache.wav"):
        sf.write(root / f, tone, 16000)
    (root / "b" / "notes.rttm").write_text("side file")
    (root / "link.wav").symlink_to(root / "top.wav")
    (root / "broken.wav").symlink_to(root / "gone.wav")
    (root / "dirlink").symlink_to(root / "b", target_is_directory=True)
    (root / "into-work.wav").symlink_to(work / "cache.wav")
    listing = list_inputs([str(root)], tmp_path, {"work_dir": work})
    assert listing.paths == tuple(sorted(str(root / f) for f in (
        "a-b/z.wav", "b/1.FLAC", "b/c/2.wav", "broken.wav", "link.wav", "talk.wav/x.mp3", "top.wav")))
    assert listing.skipped == (str(root / "b" / "notes.rttm"), str(root / "dirlink"))
    # Without the exclusion the link into the work_dir is an input like any other.
    assert str(root / "into-work.wav") in list_inputs([str(root)], tmp_path).paths
    # A glob over the tree leaves out what resolves into the work_dir too, file by file.
    glob_listing = list_inputs([str(tmp_path / "**" / "*.wav")], tmp_path, {"work_dir": work})
    assert str(root / "into-work.wav") not in glob_listing.paths
    assert str(work / "cache.wav") not in glob_listing.paths
    assert str(root / "top.wav") in glob_listing.paths
