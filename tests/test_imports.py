"""The floor plan, checked on the AST of every module (../shared/DESIGN.md, "The house").

- A stage package (vad, packer, asr, speakers, stitcher) imports from this repository only ``core``
  and its own modules.
- ``core`` imports no stage, no ``pipeline`` and not ``vadpack``.
- ``pipeline`` wires stages; ``vadpack`` is the public face over ``pipeline``; nothing imports
  ``vadpack``.
- No two folders import each other, and no module takes part in an import cycle (imports inside
  functions count too: a lazy import is still a dependency).
- One namespace: every folder is installed as ``vadpack.<folder>`` (pyproject's package-dir), and every
  import of it says so, so nothing in a user's working directory named ``core`` or ``pipeline`` can
  stand in for a vadpack module.

Modules are named here by folder (``asr.model`` is ``vadpack.asr.model`` once installed).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("scan", "vad", "packer", "asr", "speakers", "stitcher")
PACKAGES = ("core", *STAGES, "pipeline", "vadpack")
# What each package may import from this repository, besides itself.
ALLOWED = {**{stage: {"core"} for stage in STAGES}, "core": set(), "pipeline": {"core", *STAGES},
           "vadpack": {"core", "pipeline"}}


def modules() -> dict[str, Path]:
    """Every module of the shipped packages, by dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The repository modules that module ``name`` imports, anywhere in its body (by folder name)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    found = {_folder_name(m) for m in found}
    return {_owning_module(m, known) for m in found if m.split(".")[0] in PACKAGES} - {None, name}


def _folder_name(dotted: str) -> str:
    """``vadpack.asr.model`` -> ``asr.model``: the installed name of a folder's module, by folder."""
    parts = dotted.split(".")
    if len(parts) > 1 and parts[0] == "vadpack" and parts[1] in PACKAGES[:-1]:
        return ".".join(parts[1:])
    return dotted


def bare_imports(path: Path) -> list[str]:
    """Absolute imports of a repository folder without the ``vadpack.`` prefix (``from core.x import``)."""
    bare = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        bare += [n for n in names if n.split(".")[0] in PACKAGES[:-1]]
    return bare


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package else name.split(".")[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _owning_module(dotted: str, known: set[str]) -> str | None:
    """``pkg.mod.Name`` -> ``pkg.mod`` (the longest prefix that is a module)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in known:
            return ".".join(parts[:i])
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(path, name, known) for name, path in mods.items()}


def test_every_package_imports_only_what_the_house_allows(graph) -> None:
    wrong = []
    for name, deps in graph.items():
        package = name.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                wrong.append(f"{name} imports {dep}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_two_packages_import_each_other(graph) -> None:
    edges = {(a.split(".")[0], b.split(".")[0]) for a, deps in graph.items() for b in deps}
    both_ways = sorted(f"{a} <-> {b}" for a, b in edges if a < b and (b, a) in edges)
    assert not both_ways


def test_no_import_cycle(graph) -> None:
    # Invariant: the module graph is a DAG (depth-first search finds no back edge).
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle.extend([*path[path.index(dep):], dep] if dep in path else [node, dep])
                return True
            if dep not in state and visit(dep, [*path, dep]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and visit(start, [start]):
            break
    assert not cycle, " -> ".join(cycle)


def test_every_import_of_a_vadpack_module_names_the_vadpack_namespace() -> None:
    # Invariant: the installed distribution has one top-level package; a bare ``import core`` would
    # find a user's core/ folder, or another distribution's, before ours.
    files = [*modules().values(), *REPO.joinpath("tests").rglob("*.py"), *REPO.joinpath("bench").rglob("*.py")]
    wrong = [f"{path.relative_to(REPO)}: {name}" for path in files for name in bare_imports(path)]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_the_imports_it_must_see(graph) -> None:
    # Guards the checker itself: a known lazy import and a known relative-free import are found.
    assert "asr.model" in graph["pipeline.stages"]
    assert "core.tables" in graph["stitcher.stage"]
