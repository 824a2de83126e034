"""The one place that imports FunASR, so its quirks are handled once.

``import funasr`` swallows the import errors of its model modules and leaves the class registry
half empty; the first symptom is then a confusing ``None`` class deep inside ``AutoModel``. We check
the registry right after importing and name the package to fix instead.
"""

from __future__ import annotations

import contextlib
import functools
import io
from typing import Any

REQUIRED_MODELS = ("Paraformer",)


@functools.cache
def funasr_tables() -> Any:
    """FunASR's class registry, after checking that the Paraformer classes registered.

    Raises:
        ImportError: when FunASR is not installed or its Paraformer module failed to import.
    """
    try:
        # FunASR prints an ffmpeg notice to stdout on import; keep stdout for the program's output.
        with contextlib.redirect_stdout(io.StringIO()):
            import funasr  # noqa: F401  (importing registers the model classes)
        from funasr.register import tables
    except ImportError as e:
        raise ImportError("the asr stage needs FunASR: pip install 'funasr==1.4.16'") from e
    missing = [name for name in REQUIRED_MODELS if name not in tables.model_classes]
    if missing:
        raise ImportError(
            f"FunASR imported but did not register {', '.join(missing)}; one of its modules failed to "
            "import. Run with FUNASR_STRICT_IMPORT=1 to see the underlying error."
        )
    return tables


def registered_class(table: str, name: str) -> type:
    """The FunASR class registered as ``name`` in ``table`` (e.g. ``encoder_classes``).

    Raises:
        ValueError: when no class of that name is registered.
    """
    registry = getattr(funasr_tables(), table)
    cls = registry.get(name)
    if cls is None:
        raise ValueError(f"FunASR has no {table[:-8]} class {name!r}; known: {', '.join(sorted(registry))}")
    return cls
