"""The one place that imports FunASR, so its quirks are handled once for every stage that uses it.

``import funasr`` swallows the import errors of its model modules and leaves the class registry
half empty; the first symptom is then a confusing ``None`` class deep inside ``AutoModel``. We check
the registry right after importing and name the package to fix instead.
"""

from __future__ import annotations

import contextlib
import functools
import io
from typing import Any

from vadpack.core.interrupt import interrupt_not_swallowed

INSTALL = "pip install 'funasr==1.4.16'"


@functools.cache
def funasr_registry(required: tuple[str, ...], who: str) -> Any:
    """FunASR's class registry, after checking that the model classes ``required`` registered.

    Args:
        required: model class names that must be registered (``("Paraformer",)``).
        who: what needs them (``the asr stage``), named in the error.

    Raises:
        ImportError: FunASR is not installed, or one of the required classes did not register.
    """
    try:
        # FunASR prints an ffmpeg notice to stdout on import; keep stdout for the program's output.
        # Its bare except: clauses would swallow a Ctrl-C during the import (seconds long).
        with contextlib.redirect_stdout(io.StringIO()), interrupt_not_swallowed():
            import funasr  # noqa: F401  (importing registers the model classes)
        from funasr.register import tables
    except ImportError as e:
        raise ImportError(f"{who} needs FunASR: {INSTALL}") from e
    missing = [name for name in required if name not in tables.model_classes]
    if missing:
        raise ImportError(
            f"FunASR imported but did not register {', '.join(missing)}; one of its modules failed to "
            "import. Run with FUNASR_STRICT_IMPORT=1 to see the underlying error."
        )
    return tables
