"""What the stitch stage needs checked before any work: the punctuation model, when one is set."""

from __future__ import annotations

from vadpack.core.models import model_spec_problem
from vadpack.stitcher.config import StitchConfig


def check(section: StitchConfig, base_dir: str = ".") -> list[str]:
    """One line per problem with the ``stitch`` section that only the disk can tell."""
    if not section.punc_model:
        return []
    problem = model_spec_problem("stitch.punc_model", section.punc_model, base_dir)
    return [problem] if problem else []
