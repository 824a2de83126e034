"""The one way vadpack starts worker processes: a multiprocessing context that never re-runs the caller.

A ``spawn`` or ``forkserver`` child normally imports the parent's ``__main__`` before it unpickles its
work (``multiprocessing.spawn.get_preparation_data`` sends ``init_main_from_path`` or
``init_main_from_name``, and ``prepare`` runs that script again as ``__mp_main__``). A user's script
without an ``if __name__ == "__main__":`` guard would then call ``vadpack.run`` again in every worker.
vadpack's workers run vadpack functions only, so they never need the caller's main module: the
contexts here hide ``__main__.__file__`` and ``__main__.__spec__`` while a process is being started,
and the preparation data carries no main module at all. A script without a guard, ``python -c``,
``python - < script.py``, IPython and Jupyter all behave alike.

The forkserver itself is started with ``from multiprocessing.forkserver import main``; it imports
only the modules named in ``set_forkserver_preload`` (never ``__main__`` unless that list names it), so
hiding the main module around each child's start covers the forkserver's children too.

Every process vadpack starts comes from here: vad's worker pool and asr's replicas (``spawn``), and
asr's feature workers (``forkserver``). The speakers stage uses threads only. Ray's workers are Ray's
own processes, which never import the driver's ``__main__``; inside them, vadpack's pools again start
from these contexts.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context as mpc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

StartMethod = Literal["spawn", "forkserver"]

_MAIN_KEYS = ("__file__", "__spec__")
# One start at a time, so that two threads starting workers never restore each other's halves.
_hide_lock = threading.RLock()


@contextmanager
def main_module_hidden() -> Iterator[None]:
    """While inside, ``__main__`` looks like an interactive session's (no file, no spec) to multiprocessing."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _hide_lock:
        saved = {key: main.__dict__[key] for key in _MAIN_KEYS if key in main.__dict__}
        main.__dict__.pop("__file__", None)
        if "__spec__" in saved:
            main.__dict__["__spec__"] = None
        try:
            yield
        finally:
            main.__dict__.update(saved)


class _HidesMain:
    """Mixed into a multiprocessing Process class: its children start with ``__main__`` hidden."""

    @classmethod
    def _Popen(cls, process_obj: Any) -> Any:  # noqa: N802  (multiprocessing's name)
        with main_module_hidden():
            return super()._Popen(process_obj)  # type: ignore[misc]  (the Process class it is mixed into)


class _SpawnProcess(_HidesMain, mpc.SpawnProcess):
    pass


class _SpawnContext(mpc.SpawnContext):
    Process = _SpawnProcess


class _ForkServerProcess(_HidesMain, mpc.ForkServerProcess):
    pass


class _ForkServerContext(mpc.ForkServerContext):
    Process = _ForkServerProcess


_CONTEXTS: dict[str, mpc.BaseContext] = {"spawn": _SpawnContext(), "forkserver": _ForkServerContext()}


def worker_context(method: StartMethod) -> multiprocessing.context.BaseContext:
    """The multiprocessing context every vadpack worker pool, replica and forkserver child starts from.

    Args:
        method: ``spawn`` (a fresh interpreter) or ``forkserver`` (forked from a server that preloaded
            modules once).

    Returns:
        A context for ``ProcessPoolExecutor(mp_context=...)``, ``ctx.Process`` and ``ctx.Queue``: its
        children never import the caller's ``__main__``.
    """
    return _CONTEXTS[method]
