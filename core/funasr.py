"""The one place that imports FunASR, so its quirks are handled once for every stage that uses it.

Stages reach FunASR through :func:`funasr_registry` (its class registry, checked), :func:`funasr_attr`
(a class or function of one of its modules) and :func:`short_model_names` (its hub's short names, read
without importing it); ``tests/test_imports.py`` checks that no other module imports it.

``import funasr`` swallows the import errors of its model modules and leaves the class registry
half empty; the first symptom is then a confusing ``None`` class deep inside ``AutoModel``. We check
the registry right after importing and name the package to fix instead.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import io
import re
import runpy
from pathlib import Path
from typing import Any

from vadpack.core.interrupt import interrupt_not_swallowed

INSTALL = "pip install 'funasr==1.4.16'"

# A FunASR hub id: a registered short name (paraformer-zh) or namespace/name on the model hub.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.+-]*(/[A-Za-z0-9][\w.+-]*)?")


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
        tables = funasr_attr("register", "tables")  # importing funasr (its parent) registers the model classes
    except ImportError as e:
        raise ImportError(f"{who} needs FunASR: {INSTALL}") from e
    missing = [name for name in required if name not in tables.model_classes]
    if missing:
        raise ImportError(
            f"FunASR imported but did not register {', '.join(missing)}; one of its modules failed to "
            "import. Run with FUNASR_STRICT_IMPORT=1 to see the underlying error."
        )
    return tables


def funasr_attr(module: str, name: str) -> Any:
    """``name`` from FunASR's module ``funasr.<module>`` (``funasr`` itself when ``module`` is empty),
    imported quietly: ``funasr_attr("", "AutoModel")``.

    Raises:
        ImportError: FunASR, or that module of it, is not installed.
    """
    # FunASR prints an ffmpeg notice to stdout on import; keep stdout for the program's output.
    # Its bare except: clauses would swallow a Ctrl-C during the import (seconds long).
    with contextlib.redirect_stdout(io.StringIO()), interrupt_not_swallowed():
        found = importlib.import_module(f"funasr.{module}" if module else "funasr")
    return getattr(found, name)


@functools.cache
def short_model_names() -> frozenset[str]:
    """FunASR's registered short model names (paraformer-zh, ct-punc, ...), read from its name map
    file without importing FunASR (which takes seconds and prints to stdout); empty when unknown."""
    spec = importlib.util.find_spec("funasr")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(next(iter(spec.submodule_search_locations))) / "download" / "name_maps_from_hub.py"
    try:
        scope = runpy.run_path(str(path))
    except Exception:  # noqa: BLE001 - another FunASR layout: ids are then checked by their form only
        return frozenset()
    return frozenset({**scope.get("name_maps_ms", {}), **scope.get("name_maps_hf", {})})
