"""Ctrl-C and worker processes: the parent says "interrupted" once; workers leave without a word.

A terminal sends SIGINT to its whole process group, so every worker gets Ctrl-C with the parent, and
Python turns it into a KeyboardInterrupt whose traceback each worker prints. Instead a worker exits
at once and quietly on SIGINT: the parent stops the pool and reports the interrupt, and the next run
sweeps the temporaries the worker was writing (only temporary names are ever half-written).

A spawned worker takes a moment to import before its initializer runs. The parent therefore starts
workers with SIGINT blocked (a child inherits the signal mask of the thread that starts it), and the
initializer unblocks it only once the quiet handler is in place: a Ctrl-C in between waits, then
ends the worker quietly, instead of printing a traceback. The parent defers its own interrupt until
the spawn is complete, so that no child is left reading half of what it was sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def workers_start_quiet() -> Iterator[None]:
    """Start worker processes (``pool.submit`` spawns them) with SIGINT blocked and Ctrl-C deferred.

    The children inherit the blocked signal (see :func:`quiet_worker`). This process defers its own
    KeyboardInterrupt to the end of the block: raised in the middle of a spawn, it would leave the
    child half-fed, and the child would print an EOFError traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # Starting multiprocessing's resource tracker unblocks SIGINT in this thread when it is done
    # (bpo-33613), which would undo the block below: start it first.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    with _sigint_recorded(raise_now=False):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def interrupt_not_swallowed() -> Iterator[None]:
    """Make a Ctrl-C that third-party code swallows count: it is raised again when the body ends.

    FunASR imports its optional modules under bare ``except:`` clauses, so a Ctrl-C during its
    (long) import vanishes and the run goes on decoding. Here the signal is also recorded; if the
    body returns normally although it came, KeyboardInterrupt is raised then.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _sigint_recorded(raise_now=True):
        yield


@contextlib.contextmanager
def _sigint_recorded(raise_now: bool) -> Iterator[None]:
    """Record SIGINT during the body (and raise KeyboardInterrupt at once with ``raise_now``); if it
    came and the body ended normally, raise KeyboardInterrupt after the body."""
    hits: list[int] = []

    def record(signum: int, frame: object) -> None:
        hits.append(signum)
        if raise_now:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, record)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if hits and previous is not signal.SIG_IGN:
        raise KeyboardInterrupt


def quiet_worker() -> None:
    """Initializer of a worker process: on SIGINT, exit at once without a traceback."""
    signal.signal(signal.SIGINT, _leave)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _leave(signum: int, frame: object) -> None:
    os._exit(128 + signum)
