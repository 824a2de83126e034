"""Atomic writes: every file vadpack writes appears under its final name complete, or not at all.

A writer works on a temporary sibling (``.<name>.tmp-<random>``), which is fsync-ed and renamed over
the final name when the write succeeds and removed when it fails. A crash can leave a temporary
file behind; the runner recognises the pattern and sweeps them at the start of the next run. Kept
free of heavy imports: worker processes use it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def tmp_name(path: Path) -> Path:
    """A temporary sibling of ``path`` that a crash can leave behind and a rerun recognises and sweeps."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    Args:
        path: the final file name (its folder is created).
        durable: fsync the file before the rename, so a power cut cannot leave a renamed but empty
            file. Off only for files that are cheap to recompute and written by the thousand.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
