"""What native decoders print goes into the recording's warning, not onto the terminal.

libsndfile hands mp3 to libmpg123, which writes notes such as ``Note: Trying to resync...`` and
``error: dequantization failed!`` straight to file descriptor 2, where Python cannot catch them:
on a big archive they bury the progress bar and name no file. Around each native call, fd 2 is
pointed at a temporary file, and what was written there becomes one short note about the file
being decoded (a warning on its document, or part of its failure reason).

fd 2 belongs to the whole process. One capture at a time holds it; a thread that finds it held runs
its call uncaptured rather than wait, so decoding in threads is never serialised and fd 2 is always
restored by the capture that redirected it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_sink: dict[int, object] = {}  # pid -> the temporary file; a forked child must not share its offset
_MAX_LINES = 3
_MAX_CHARS = 300


@contextlib.contextmanager
def native_stderr_into(notes: list[str]) -> Iterator[None]:
    """Capture what native code writes to fd 2 during the block; append it to ``notes`` as one line."""
    if not _lock.acquire(blocking=False):
        yield
        return
    try:
        sink = _sink_file()
        _flush_python_stderr()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            text = _drain(sink)
            if text:
                notes.append(f"decoder said: {text}")
    finally:
        _lock.release()


def _sink_file():
    sink = _sink.get(os.getpid())
    if sink is None:
        sink = _sink[os.getpid()] = tempfile.TemporaryFile()
        atexit.register(sink.close)  # one per process, kept open between captures
    return sink


def _flush_python_stderr() -> None:
    # Text Python buffered for the terminal must go there, not into the capture.
    with contextlib.suppress(Exception):
        sys.stderr.flush()


def _drain(sink) -> str:
    """What the sink holds, as one line of the first distinct lines; the sink is emptied."""
    sink.seek(0)
    raw = sink.read(64 * 1024).decode("utf-8", "replace")
    sink.seek(0)
    sink.truncate()
    lines = list(dict.fromkeys(line.strip() for line in raw.splitlines() if line.strip()))
    text = " | ".join(lines[:_MAX_LINES]) + (f" | ... ({len(lines) - _MAX_LINES} more)" if len(lines) > _MAX_LINES
                                             else "")
    return text[:_MAX_CHARS]
