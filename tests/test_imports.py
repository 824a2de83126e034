"""The floor plan, checked on the AST of every module (../shared/DESIGN.md, "The house").

- A stage package (scan, vad, packer, asr, speakers, stitcher) imports from this repository only
  ``core`` and its own modules.
- ``core`` imports no stage, no ``pipeline`` and not ``vadpack``.
- ``testkit`` (test and demo scaffolding: random model folders) builds on ``asr``; only ``pipeline``'s
  ``vadpack tiny-model`` command imports it, and no stage does.
- ``pipeline`` wires stages; ``vadpack`` is the public face over ``pipeline``; nothing imports
  ``vadpack``.
- ``pipeline`` (and ``vadpack``) reach a stage package only through its entry points: the modules
  ``stage`` (its run functions), ``config``, ``check`` (what preflight collects) and ``types``
  (``ENTRY_POINTS``); the imports that predate this rule are listed, one by one, in ``PIPELINE_DEBTS``.
- FunASR is imported only in ``core/funasr.py`` (``import funasr``, ``from funasr...``, or by name
  through importlib), so its quirks are handled once.
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
PACKAGES = ("core", *STAGES, "testkit", "pipeline", "vadpack")
# What each package may import from this repository, besides itself.
ALLOWED = {**{stage: {"core"} for stage in STAGES}, "core": set(), "testkit": {"core", "asr"},
           "pipeline": {"core", *STAGES, "testkit"},
           "vadpack": {"core", "pipeline"}}


# A stage package's public face to the orchestrator.
ENTRY_POINTS = ("stage", "config", "check", "types")
# Imports by pipeline of a stage's inner module that predate the entry-point rule. Each is to move
# behind its package's entry points; the test fails on a new one, and on one listed here that is gone.
PIPELINE_DEBTS: frozenset[tuple[str, str]] = frozenset()
# The modules that may import FunASR.
FUNASR_MODULES = ("core.funasr",)


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
    assert "packer.stage" in graph["pipeline.stages"]  # imported inside a function (run_pack)
    assert "core.tables" in graph["stitcher.stage"]


def _inner_stage_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(module, stage module) for each import by pipeline or vadpack of a stage module that is not an entry point."""
    return {(name, dep) for name, deps in graph.items() if name.split(".")[0] in ("pipeline", "vadpack")
            for dep in deps if dep.split(".")[0] in STAGES and dep.split(".", 1)[-1] not in ENTRY_POINTS}


def test_pipeline_reaches_stages_only_through_their_entry_points(graph) -> None:
    found = _inner_stage_imports(graph)
    new = sorted(f"{a} imports {b}" for a, b in found - PIPELINE_DEBTS)
    assert not new, "import it through the stage's entry points " + str(ENTRY_POINTS) + ":\n" + "\n".join(new)
    paid = sorted(f"{a} -> {b}" for a, b in PIPELINE_DEBTS - found)
    assert not paid, "no longer imported; remove from PIPELINE_DEBTS:\n" + "\n".join(paid)


def test_preflight_only_collects_each_stage_check(graph) -> None:
    # Every stage offers check(); preflight imports stages through nothing else.
    deps = {d for d in graph["pipeline.preflight"] if d.split(".")[0] in STAGES}
    assert deps == {f"{stage}.check" for stage in STAGES}
    for stage in STAGES:
        tree = ast.parse((REPO / stage / "check.py").read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body), stage


def funasr_imports(path: Path) -> list[str]:
    """Where a module imports FunASR: ``import funasr...``, ``from funasr... import``, or a call of
    ``import_module``, ``__import__`` or ``find_spec`` whose module name holds a string starting with
    ``funasr`` (``importlib.import_module(f"funasr.{name}")``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if isinstance(node, ast.Call) and node.args:
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("import_module", "__import__", "find_spec"):  # any string in the name, f-strings too
                names = [c.value for c in ast.walk(node.args[0]) if isinstance(c, ast.Constant)
                         and isinstance(c.value, str)]
        found += [f"line {node.lineno}: {n}" for n in names if n.split(".")[0] == "funasr"]
    return found


def test_funasr_is_imported_only_in_core_funasr() -> None:
    mods = modules()
    wrong = [f"{name} {where}" for name, path in mods.items() if name not in FUNASR_MODULES
             for where in funasr_imports(path)]
    assert not wrong, "reach FunASR through vadpack.core.funasr:\n" + "\n".join(wrong)
    # Guards the checker: core.funasr's own import is seen.
    assert funasr_imports(mods["core.funasr"])
