"""What the pack stage needs checked before any work: nothing beyond its section's own validation
(``PackerConfig``); the budget's device is asr's (``asr.check``). Here so that every stage offers one
``check`` and preflight only collects."""

from __future__ import annotations

from vadpack.packer.config import PackerConfig


def check(section: PackerConfig) -> list[str]:
    """One line per problem with the ``packer`` section that only the machine can tell: none."""
    return []
