"""``mypy --strict`` passes on the public API (``vadpack`` and ``vadpack.pipeline.api``), as ``make typecheck``
runs it: through a tree of symbolic links laid out as the installed package, since mypy cannot follow
setuptools' editable finder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FOLDERS = ("core", "scan", "vad", "packer", "asr", "speakers", "stitcher", "pipeline")


def test_public_api_passes_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")
    typed = tmp_path / "vadpack"
    typed.mkdir()
    for name in ("__init__.py", "__main__.py", "py.typed"):
        (typed / name).symlink_to(REPO / "vadpack" / name)
    for folder in FOLDERS:
        (typed / folder).symlink_to(REPO / folder)
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "-m", "vadpack", "-m",
                           "vadpack.pipeline.api"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "MYPYPATH": str(tmp_path)}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
