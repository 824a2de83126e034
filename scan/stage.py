"""The scan stage: the files the inputs name -> one row per input file, probed.

A recording id is a readable, file-name-safe stem plus a hash of the resolved path, so two files
called ``a.wav`` in different folders never share an id, and the id never changes between runs.
What the inputs name is listed by ``scan.inputs`` (``list_inputs``, offered here too, with the note
on skipped files, as the stage's entry points).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pyarrow as pa
from vadpack.core.fingerprint import file_content_id
from vadpack.core.tables import RECORDINGS, to_table
from vadpack.scan.inputs import InputListing, list_inputs, skipped_note

__all__ = ["InputListing", "fingerprint_inputs", "known_content_ids", "list_inputs", "recording_id", "scan",
           "skipped_note"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def recording_id(path: str) -> str:
    """A stable, unique, file-name-safe id: ``<stem>-<8 hex of the resolved path>``."""
    resolved = os.path.realpath(os.path.abspath(path))
    digest = hashlib.sha1(resolved.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = _UNSAFE.sub("_", Path(path).stem).strip("._-")[:48] or "audio"
    return f"{stem}-{digest}"


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
