"""One run at a time per work_dir: an exclusive lock on ``<work_dir>/.vadpack.lock``.

The lock is an ``flock`` on the file, so the kernel releases it when its process dies: a lock left
by a killed run is simply taken over by the next one. The file holds the holder's process id, so a
second run can say which process is in the way.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from vadpack.core.configtools import ConfigError

log = logging.getLogger("vadpack")


class WorkDirLock:
    """A context manager holding the work_dir lock.

    Raises:
        ConfigError: another live process holds it (exit 2: wait for it, or use another work_dir).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> WorkDirLock:  # noqa: PYI034
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise ConfigError(f"work_dir {self.path.parent} is in use by another vadpack run (process "
                              f"{holder or 'unknown'}, lock {self.path}); wait for it to finish or use "
                              "another work_dir") from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid():
            log.info("took over the work_dir lock left by process %s, which is no longer running", previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
