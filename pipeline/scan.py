"""The scan stage: inputs (files, folders, globs, list files) -> one row per input file, probed.

A recording id is a readable, file-name-safe stem plus a hash of the resolved path, so two files
called ``a.wav`` in different folders never share an id, and the id never changes between runs.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from vadpack.core.configtools import ConfigError
from vadpack.core.fingerprint import file_content_id
from vadpack.core.tables import RECORDINGS, to_table
from vadpack.pipeline.config import Config

log = logging.getLogger("vadpack")

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
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def recording_id(path: str) -> str:
    """A stable, unique, file-name-safe id: ``<stem>-<8 hex of the resolved path>``."""
    resolved = os.path.realpath(os.path.abspath(path))
    digest = hashlib.sha1(resolved.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = _UNSAFE.sub("_", Path(path).stem).strip("._-")[:48] or "audio"
    return f"{stem}-{digest}"


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


def list_inputs(cfg: Config) -> InputListing:
    """Expand ``cfg.inputs`` (files, folders, globs, list files) into the files to scan.

    Raises:
        ConfigError: when work_dir lies inside an input folder (the cache would be rescanned as input).
    """
    lister = _Lister(cfg.work_path.resolve())
    for entry in cfg.inputs:
        lister.add(entry, cfg.resolve_input(entry), strict=True)
    return lister.listing()


def skipped_note(skipped: tuple[str, ...] | list[str], show: int = 5) -> str:
    """``skipped 7 files that are not audio by their suffix: a.rttm, b.json, ... (2 more)``."""
    names = ", ".join(skipped[:show]) + (f", ... ({len(skipped) - show} more)" if len(skipped) > show else "")
    return f"scan: skipped {len(skipped)} files that are not audio by their suffix: {names}"


class _Lister:
    """Collects the files the inputs name, and what is wrong with the entries that name none.

    ``strict`` entries come from the config: a missing one is an error. Entries read from a list
    file are data: a missing one is kept and becomes a failure row in scan.
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.found: dict[str, None] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.skipped: list[str] = []

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

    def _keep(self, path: Path | str) -> None:
        self.found.setdefault(os.path.abspath(path), None)

    def _folder(self, entry: str, p: Path) -> None:
        if self.work == p.resolve() or p.resolve() in self.work.parents:
            raise ConfigError(f"work_dir {self.work} is inside the input folder {p}: vadpack would rescan its own "
                              "cache as input. Put work_dir outside the input folders.")
        before = len(self.found)
        # Folders named like audio files (talk.wav/) are walked, not listed; symlinks are listed so a
        # broken or looping link is reported instead of silently skipped.
        for f in sorted(p.rglob("*")):
            if _inside(f, self.work) or not (f.is_symlink() or f.is_file()):
                continue
            if f.suffix.lower() in AUDIO_SUFFIXES:
                self._keep(f)
            else:
                self.skipped.append(str(f))
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
            if _inside(mp, self.work):
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


def fingerprint_inputs(paths: list[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) per input, or (path, -1, -1) when it cannot be stat-ed."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((p, -1, -1))
    return out


def scan(paths: list[str], known: dict[tuple[str, int, int], str] | None = None) -> pa.Table:
    """Probe each input; a file that cannot be read becomes a ``failed`` row with the reason.

    Args:
        paths: the input files.
        known: content ids from the previous scan by (path, size, mtime_ns); a file that matches is
            not read again. A renamed, copied or modified file is hashed.
    """
    from vadpack.core.audio import AudioError, probe

    known = known or {}
    rows = []
    for path in paths:
        row = {"recording_id": recording_id(path), "path": path, "content_id": None, "duration_s": None,
               "sample_rate": None, "channels": None, "codec": None, "size_bytes": None, "mtime_ns": None,
               "status": "ok", "error": None}
        try:
            st = os.stat(path)
            row.update(size_bytes=st.st_size, mtime_ns=st.st_mtime_ns)
            info = probe(path)
            row.update(duration_s=info.duration_s, sample_rate=info.sample_rate, channels=info.channels,
                       codec=info.codec)
            row["content_id"] = known.get((path, st.st_size, st.st_mtime_ns)) or file_content_id(path)
        except (AudioError, OSError, RuntimeError) as e:
            row.update(status="failed", error=_describe(e, path))
        rows.append(row)
    return to_table(rows, RECORDINGS)


def known_content_ids(previous: pa.Table | None) -> dict[tuple[str, int, int], str]:
    """(path, size, mtime_ns) -> content id of the files a previous scan hashed."""
    if previous is None or "content_id" not in previous.column_names:
        return {}
    cols = [previous[c].to_pylist() for c in ("path", "size_bytes", "mtime_ns", "content_id")]
    return {(p, s, m): c for p, s, m, c in zip(*cols) if c is not None}


def _describe(e: Exception, path: str) -> str:
    if isinstance(e, FileNotFoundError):
        return "file not found (or a broken symlink): check the inputs list"
    if isinstance(e, IsADirectoryError) or Path(path).is_dir():
        return "is a directory, not an audio file"
    if isinstance(e, PermissionError):
        return "permission denied: vadpack cannot read this file"
    if isinstance(e, OSError) and e.errno == 40:
        return "symlink loop: the path points back to itself"
    return str(e)
