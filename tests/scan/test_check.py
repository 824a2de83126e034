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
