"""The README's "From Python" example works whoever runs it: a script without a main guard, ``python -c``,
stdin (``python - < script.py``) and IPython.

Worker processes (vad's spawn pool, the asr feature workers' forkserver) must never re-run the caller's
code: if they did, each would call ``vadpack.run`` again, find the work_dir locked and die, and the
parent would report healthy audio as corrupt. The example runs as written, against a copy of the demo
(``configs/demo.yaml`` verbatim, ``examples/``, and the tiny model at ``runs/models/tiny``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def readme_python_example() -> str:
    section = (REPO / "README.md").read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


def demo_tree(root: Path, tiny_model: Path) -> Path:
    """The repository's demo layout in ``root``: configs/demo.yaml, examples/, runs/models/tiny."""
    (root / "configs").mkdir(parents=True)
    shutil.copy(REPO / "configs" / "demo.yaml", root / "configs" / "demo.yaml")
    shutil.copytree(REPO / "examples", root / "examples")
    (root / "runs" / "models").mkdir(parents=True)
    (root / "runs" / "models" / "tiny").symlink_to(tiny_model)
    (root / "script.py").write_text(readme_python_example())
    return root


def caller(how: str, script: Path) -> tuple[list[str], str | None]:
    """The command line and stdin that run ``script`` the way ``how`` says."""
    code = script.read_text()
    if how == "script":
        return [sys.executable, script.name], None
    if how == "-c":
        return [sys.executable, "-c", code], None
    if how == "stdin":
        return [sys.executable, "-"], code
    pytest.importorskip("IPython", reason="IPython is in the dev extra: pip install -e '.[dev]'")
    # A notebook cell: IPython runs the code in its own __main__ namespace.
    return [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", code], None


@pytest.mark.parametrize("how", ["script", pytest.param("-c", marks=pytest.mark.slow),
                                 pytest.param("stdin", marks=pytest.mark.slow),
                                 pytest.param("ipython", marks=pytest.mark.slow)])
def test_readme_example_runs_from_any_caller(tmp_path, tiny_model, how) -> None:
    root = demo_tree(tmp_path, tiny_model)
    # Invariant: the example has no main guard; the workers must not need one.
    assert "__main__" not in (root / "script.py").read_text()
    argv, stdin = caller(how, root / "script.py")
    done = subprocess.run(argv, input=stdin, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # print(report.stages_run, report.summary.segments, report.failed): the demo's 9 segments, 0 failures.
    first = done.stdout.splitlines()[0]
    assert first.endswith(" 9 0"), done.stdout
    assert "in use by another vadpack run" not in done.stderr
    assert "crashed" not in done.stderr
    assert [line.split()[:2] for line in done.stdout.splitlines()[1:7]] == [
        [stage, "done"] for stage in ("scan", "vad", "speakers", "pack", "asr", "stitch")]
