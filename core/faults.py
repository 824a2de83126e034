"""Test-only fault injection, off unless the environment variable ``VADPACK_FAULTS`` is set.

``VADPACK_FAULTS`` is a comma-separated list of ``name[=arg]``:

- ``parquet_write=SUBSTRING``: writing a Parquet file whose path contains SUBSTRING raises OSError
  (ENOSPC), as a full disk would. Once per process unless the name is followed by ``!``.
- ``cuda_oom=N``: a model call on a batch of more than N items raises torch.OutOfMemoryError.
- ``feature_worker=BATCH_ID``: computing features for that batch raises RuntimeError in the worker
  (first attempt only, so the inline retry recovers).
- ``asr_replica_crash=INDEX``: asr replica INDEX exits abruptly as soon as it takes a task from the
  queue, as a crash in native code would (only in a replica process, with ``asr.replicas`` > 1).
- ``vad_worker_crash=RECORDING_ID``: the vad worker process handling that recording exits abruptly
  (only in a worker process, never inline), as a crashing decoder would.
- ``kill_at=POINT[:N]``: the process that reaches the named point POINT for the Nth time (default 1)
  kills itself with SIGKILL there, as ``kill -9``, a power cut or the OOM killer would: no handler,
  no cleanup, no flush.
- ``interrupt_at=POINT[:N]``: the process that reaches POINT for the Nth time sends SIGINT there, as a
  Ctrl-C would, so the real interrupt handling runs. A terminal signals its whole foreground process
  group: a process that leads its own group (started in a new session, as a shell starts a command)
  signals that group, workers included; any other process signals only itself, so a run inside a
  test process never interrupts the test runner.

The named points (see :func:`fault_point`) are where the stages commit work. Each is counted per
process, from 1, and only while a ``kill_at`` or ``interrupt_at`` asks for it:

- ``STAGE.started``: the runner is about to run STAGE (``scan``, ``vad``, ``speakers``, ``pack``,
  ``asr``, ``stitch``); its old manifest is already removed (pipeline/runner.py).
- ``STAGE.done``: STAGE's manifest is written; the stage counts as complete (pipeline/runner.py).
- ``vad.submit``: the vad stage has handed one more recording to its worker pool, whose workers it
  spawns as they are needed; reached with Ctrl-C still held back, so an interrupt there arrives
  while a worker is being started (vad/stage.py, only with ``vad.workers`` > 1).
- ``vad.recording_done``: the vad stage hands on one recording's outcome in the parent process; its
  sidecar (the committed result) is written, and the other workers may be decoding (vad/stage.py;
  outcomes the cache already held count too).
- ``speakers.part_written``: one part file of the speaker store is written (pipeline/stages.py).
- ``asr.feature_server_started``: asr has started the forkserver of its feature workers, which is
  now importing FunASR, and has not loaded the model yet (asr/stage.py, ``asr.feature_workers`` > 0).
- ``asr.replicas_started``: asr has started its replica processes, which are importing torch, with
  Ctrl-C still held back (asr/replicas.py, ``asr.replicas`` > 1).
- ``asr.part_written``: one part file of the transcript store is written, in the process that
  decodes (the run, or a replica) (asr/stage.py).
- ``store.moved_aside``: a forced run's swap has renamed the old store aside (``<store>.replaced``)
  and not yet put the new one in its place (core/partstore.py).
- ``asr.part_received``: the Ray engine's driver has received one part file an actor finished (the
  part is in the store; the actors may be decoding others) (pipeline/engines/ray_engine.py).
- ``stitch.table_written``: one part file of a public table is staged (written aside, not yet live;
  the tables become the new ones all together when the manifest is renamed into place)
  (stitcher/incremental.py).

Nothing here runs in production: with the variable unset, every check is a dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

_fired: set[str] = set()
_reached: Counter[str] = Counter()


def active() -> dict[str, str]:
    """The faults requested by ``VADPACK_FAULTS`` as ``{name: arg}``."""
    spec = os.environ.get("VADPACK_FAULTS", "")
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, arg = item.partition("=")
        out[name] = arg
    return out


def fault_arg(name: str) -> str | None:
    """The argument of fault ``name`` when it is requested, else None."""
    return active().get(name)


def maybe_fail(name: str, context: str) -> None:
    """Raise the injected fault ``name`` when it is requested and ``context`` matches."""
    arg = fault_arg(name)
    if arg is None:
        return
    if name == "parquet_write":
        repeat = arg.endswith("!")
        needle = arg.rstrip("!")
        if needle in context and (repeat or context not in _fired):
            _fired.add(context)
            raise OSError(errno.ENOSPC, f"injected fault: no space left on device writing {context}")


def fault_point(point: str) -> None:
    """Mark the named point ``point`` (listed above): ``kill_at`` or ``interrupt_at`` may act here.

    Call it right after the work it names is committed (a file renamed into place, a manifest
    written), so that a test stops the run at exactly that state whatever the machine's speed.
    """
    if not os.environ.get("VADPACK_FAULTS"):
        return
    faults = active()
    for name, signum in (("kill_at", signal.SIGKILL), ("interrupt_at", signal.SIGINT)):
        target, _, nth = faults.get(name, "").partition(":")
        if target != point:
            continue
        _reached[name] += 1
        if _reached[name] == int(nth or 1):
            _send(signum)


def _send(signum: int) -> None:
    if signum == signal.SIGINT and os.getpgrp() == os.getpid():
        os.killpg(os.getpgrp(), signum)  # a terminal's Ctrl-C: the whole foreground group
    else:
        os.kill(os.getpid(), signum)
