"""Temporary names for atomic writes (kept free of heavy imports: worker processes use it)."""

from __future__ import annotations

import uuid
from pathlib import Path


def tmp_name(path: Path) -> Path:
    """A temporary sibling of ``path`` that a crash can leave behind and a rerun recognises and sweeps."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
