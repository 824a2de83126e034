"""One namespace: the installed distribution has one top-level package, and a user's folder cannot shadow it.

The user's working folder comes first on ``sys.path`` for ``python -c`` and ``python -m``; before the
move, a ``pipeline.py`` or a ``core/`` there stood in for vadpack's own modules. Each stand-in here
raises on import, so the tests see it the moment anything imports it.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("core", "scan", "vad", "packer", "asr", "speakers", "stitcher", "pipeline", "testkit")


def _user_folder(tmp_path: Path) -> Path:
    """A working folder with modules and packages named like vadpack's folders, each of which raises."""
    bomb = "raise ImportError('a user module named {name} was imported instead of vadpack.{name}')\n"
    for name in ("pipeline", "vad", "asr", "stitcher"):
        (tmp_path / f"{name}.py").write_text(bomb.format(name=name))
    for name in ("core", "packer", "speakers"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(bomb.format(name=name))
    return tmp_path


def test_the_installed_distribution_has_only_vadpack_at_the_top() -> None:
    dist = distribution("vadpack")
    assert (dist.read_text("top_level.txt") or "").split() == ["vadpack"]
    owned = {name for name, dists in packages_distributions().items() if "vadpack" in dists}
    assert owned == {"vadpack"}
    assert not set(FOLDERS) & owned


@pytest.mark.parametrize("args", [["-c", "import vadpack, vadpack.pipeline.cli; print(vadpack.__version__)"],
                                  ["-m", "vadpack", "--version"]], ids=["import", "module"])
def test_a_users_folder_named_like_ours_shadows_nothing(tmp_path: Path, args: list[str]) -> None:
    folder = _user_folder(tmp_path)
    out = subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().split()[-1] == distribution("vadpack").version


@pytest.mark.slow
def test_the_readme_example_runs_from_a_users_folder_named_like_ours(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "user").mkdir()
    folder = _user_folder(tmp_path / "user")
    config = tmp_path / "demo.yaml"
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data.update(inputs=[str(REPO / "examples")], work_dir=str(tmp_path / "work"))
    data["asr"]["model"] = str(tiny_model)
    config.write_text(yaml.safe_dump(data))
    script = f"import vadpack\nr = vadpack.run({str(config)!r})\nprint(r.summary.segments, r.failed)\n"
    out = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2:] == ["9", "0"]
