"""vadpack's per-user cache folder: what is worth keeping across work_dirs and runs.

It holds the identities (content hashes) of local model folders, so that a model hashed once is not
hashed again for every new work_dir, and the compiled graphs of ``asr.compile``. Everything in it can
be deleted at any time; it is rebuilt as needed.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$VADPACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/vadpack``, else ``~/.cache/vadpack`` (not created here)."""
    if os.environ.get("VADPACK_CACHE_DIR"):
        return Path(os.environ["VADPACK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vadpack"
