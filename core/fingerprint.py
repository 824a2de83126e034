"""Content ids: what a recording *is*, independent of where it lives.

A content id is a hash of a file's bytes, streamed in blocks, so a renamed, moved or copied file
has the same id and a file modified in place gets a new one. It keys the PCM cache and the stores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK_BYTES = 1 << 20
DIGEST_BYTES = 16  # 128 bits: no accidental collision in any archive


def file_content_id(path: str | Path) -> str:
    """The content id of a file: hex BLAKE2b-128 of its bytes (a byte-identical copy has the same id).

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.blake2b(digest_size=DIGEST_BYTES)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            h.update(block)
    return h.hexdigest()
