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

Nothing here runs in production: with the variable unset, every check is a dictionary lookup.
"""

from __future__ import annotations

import errno
import os

_fired: set[str] = set()


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
