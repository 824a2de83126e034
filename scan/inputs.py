"""What ``inputs`` names on disk: files, folders (searched recursively), globs and list files.

Folders and globs take the files whose suffix is an audio or video container's; a file named on its
own is always scanned. A missing entry is an error (preflight: exit 2); a missing file named in a
list file is data, and becomes a failure row.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vadpack.core.configtools import ConfigError

# Every container FFmpeg (PyAV) opens whose audio track vadpack can decode: audio files, and the
# video containers meetings are often recorded in (.mkv, .mp4, .mov, ...), whose audio is transcribed.
# Listed broadly because a folder scan or a glob skips what is not here: side files (.rttm, .json,
# .txt) are what it must skip. A file named explicitly in the inputs is scanned whatever its suffix.
AUDIO_SUFFIXES = frozenset({
    ".wav", ".wave", ".w64", ".rf64", ".flac", ".mp3", ".mp2", ".m4a", ".m4b", ".aac", ".ac3", ".eac3",
    ".ogg", ".oga", ".opus", ".spx", ".wma", ".aif", ".aiff", ".aifc", ".caf", ".amr", ".awb", ".3ga",
    ".au", ".snd", ".ape", ".wv", ".tta", ".mpc", ".ra", ".rm", ".voc", ".gsm", ".mka",
    ".webm", ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".wmv", ".asf", ".flv", ".f4v", ".3gp", ".3g2",
    ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".vob", ".ogv", ".mxf", ".nut", ".dv",
})
# An input file with one of these suffixes is a list of inputs, one path a line.
LIST_SUFFIXES = frozenset({".txt", ".lst"})


@dataclass(frozen=True, slots=True)
class InputListing:
    """What ``inputs`` names on disk.

    Attributes:
        paths: the files to scan, sorted and de-duplicated. A named file that does not exist is kept,
            so that scan records it as a failure with the reason (no input is silently dropped).
        errors: one line per entry that cannot be used as given: a missing file, folder or list, a
            glob that matches no audio file or is malformed, an unreadable list (preflight: exit 2).
        notes: warnings: a folder or a list that holds no audio file.
        skipped: files left out of folder and glob scans because their suffix is not an audio one.
    """

    paths: tuple[str, ...]
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


def list_inputs(inputs: Sequence[str], base_dir: str | Path = ".",
                exclude: Mapping[str, Path] | None = None) -> InputListing:
    """Expand ``inputs`` (files, folders, globs, list files) into the files to scan.

    Args:
        inputs: the entries as configured; a relative one resolves against ``base_dir``.
        base_dir: the folder relative entries are written against (the config file's folder).
        exclude: folders that are never input, by the key that names them (``{"work_dir": path}``):
            their files are left out of folder and glob scans.

    Raises:
        ConfigError: when an excluded folder lies inside an input folder (the work_dir's cache would
            be rescanned as input); the message names its key.
    """
    lister = _Lister({key: Path(folder).resolve() for key, folder in (exclude or {}).items()})
    for entry in inputs:
        lister.add(entry, _resolve(entry, base_dir), strict=True)
    return lister.listing()


def _resolve(entry: str, base_dir: str | Path) -> str:
    path = Path(entry).expanduser()
    return str(path if path.is_absolute() else Path(base_dir) / path)


def skipped_note(skipped: tuple[str, ...] | list[str], show: int = 5) -> str:
    """``skipped 7 files that are not audio by their suffix: a.rttm, b.json, ... (2 more)``."""
    names = ", ".join(skipped[:show]) + (f", ... ({len(skipped) - show} more)" if len(skipped) > show else "")
    return f"scan: skipped {len(skipped)} files that are not audio by their suffix: {names}"


class _Lister:
    """Collects the files the inputs name, and what is wrong with the entries that name none.

    ``strict`` entries come from the config: a missing one is an error. Entries read from a list
    file are data: a missing one is kept and becomes a failure row in scan.
    """

    def __init__(self, exclude: dict[str, Path]) -> None:
        self.exclude = exclude
        self.found: dict[str, None] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.skipped: list[str] = []
        self._dirs: dict[str, bool] = {}

    def listing(self) -> InputListing:
        return InputListing(tuple(sorted(self.found)), tuple(self.errors), tuple(self.notes), tuple(self.skipped))

    def add(self, entry: str, resolved: str, strict: bool) -> None:
        p = Path(resolved)
        if p.is_dir():
            self._folder(entry, p)
        elif strict and p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            self._list_file(entry, p)
        elif p.exists() or p.is_symlink():
            self._keep(p)  # a broken or looping link is kept, so scan says what is wrong with it
        elif glob.has_magic(entry):
            self._glob(entry, resolved, strict)
        else:
            self._keep(p)
            if strict:
                where = "" if entry == str(p) else f" (resolved to {p})"
                self.errors.append(f"input {entry!r} does not exist{where}; fix the path in inputs")

    def _excluded(self, path: Path) -> bool:
        """``path`` lies in an excluded folder once resolved. A file that is not a link is there when
        its folder is, and each folder is resolved once (a glob can match thousands in one folder)."""
        if not self.exclude:
            return False
        if os.path.islink(path) or not os.path.isfile(path):
            return any(_inside(path, folder) for folder in self.exclude.values())
        return self._excluded_dir(os.path.dirname(os.path.abspath(path)))

    def _excluded_dir(self, folder: str) -> bool:
        """``folder`` is an excluded folder or lies in one, once resolved (cached per folder)."""
        if folder not in self._dirs:
            try:
                real = Path(folder).resolve()
                self._dirs[folder] = any(f == real or f in real.parents for f in self.exclude.values())
            except (OSError, RuntimeError):
                self._dirs[folder] = False
        return self._dirs[folder]

    def _walk(self, folder: str) -> Iterator[str]:
        """The files and links under ``folder``, recursively, leaving out excluded folders.

        Folders named like audio files (talk.wav/) are walked, not listed; links (to a file or a
        folder, broken or looping) are listed, not followed, so scan reports what is wrong with them
        instead of skipping them silently. Each folder is resolved once, not each file in it: a file
        lies in an excluded folder when its folder does; a link is resolved on its own. With
        ``os.scandir`` the kind of each entry comes with the listing, so a large archive costs no
        ``stat`` per file here.
        """
        if self.exclude and self._excluded_dir(folder):
            return
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:  # an unreadable folder holds nothing to scan (as pathlib's rglob)
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                yield from self._walk(e.path)
            elif e.is_symlink():
                if not self._excluded(Path(e.path)):
                    yield e.path
            elif e.is_file(follow_symlinks=False):
                yield e.path

    def _keep(self, path: Path | str) -> None:
        self.found.setdefault(os.path.abspath(path), None)

    def _folder(self, entry: str, p: Path) -> None:
        for key, folder in self.exclude.items():
            if folder == p.resolve() or p.resolve() in folder.parents:
                raise ConfigError(f"{key} {folder} is inside the input folder {p}: vadpack would rescan its own "
                                  f"cache as input. Put {key} outside the input folders.")
        before = len(self.found)
        for f in sorted(self._walk(str(p)), key=lambda path: path.split(os.sep)):  # as Paths sort
            if os.path.splitext(f)[1].lower() in AUDIO_SUFFIXES:
                self._keep(f)
            else:
                self.skipped.append(f)
        if len(self.found) == before:
            self.notes.append(f"input folder {entry!r} holds no audio file")

    def _glob(self, entry: str, pattern: str, strict: bool) -> None:
        try:
            matches = sorted(glob.glob(pattern, recursive=True))
        except re.error as e:  # fnmatch builds a regex: "[z-a]" is a bad character range
            self.errors.append(f"input {entry!r} is not a valid glob pattern ({e}); fix or quote the pattern")
            return
        before = len(self.found)
        for m in matches:
            mp = Path(m)
            if self._excluded(mp):
                continue
            if mp.is_dir():
                self._folder(m, mp)  # a glob over folders (/data/2024-*) means their recordings
            elif mp.suffix.lower() in AUDIO_SUFFIXES:
                self._keep(mp)
            else:
                self.skipped.append(m)
        if len(self.found) == before:
            where = "" if entry == pattern else f" (resolved to {pattern})"
            (self.errors if strict else self.notes).append(
                f"input glob {entry!r}{where} matches no audio file; check the pattern")

    def _list_file(self, entry: str, p: Path) -> None:
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            self.errors.append(f"input list {entry!r} cannot be read ({e}); give a UTF-8 text file, one path a line")
            return
        before = len(self.found)
        for line in (raw.strip() for raw in lines):
            if line and not line.startswith("#"):
                path = Path(line).expanduser()
                self.add(line, str(path if path.is_absolute() else p.parent / path), strict=False)
        if len(self.found) == before:
            self.notes.append(f"input list {entry!r} names no audio file")


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder in path.resolve().parents
    except (OSError, RuntimeError):
        return False


