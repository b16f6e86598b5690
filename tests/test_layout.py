"""The layout holds: imports run one way, down to ``workflows/``, and no module circles.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a
function counts as much as one at the top; only ``if TYPE_CHECKING:`` blocks are free.

The rules, by who each part serves:
- ``workflows/`` is the domain: it imports nothing from ``config``, ``intake`` or
  ``referrals``.
- ``intake/`` outside ``intake/staff/`` is the tipsters' side: it imports nothing from
  the staff desk (``intake.staff``) nor from what agencies see (``referrals``).
- ``referrals/`` (agencies, delivery) imports nothing from the staff desk.
- Nothing imports the app factory or the CLI wiring (``config.app``, ``config.cli``)
  but ``wsgi.py``, tests and benchmarks; production code never imports ``bench`` or
  ``tests``.
- No two modules import each other, directly or round a longer circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "intake", "referrals", "workflows")
TOP = ("config.app", "config.cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _import_nodes(node)


def imports_of(module: str, path: Path) -> set[str]:
    """The first-party modules ``module`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    outside = ("bench", "tests")
    return {name for name in names if name in MODULES or name.split(".")[0] in outside}


GRAPH = {module: imports_of(module, path) for module, path in MODULES.items()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def upward_imports() -> list[str]:
    """Every import that breaks a rule of the module docstring, as "a -> b (why)"."""
    found = []
    for module, targets in sorted(GRAPH.items()):
        for target in sorted(targets):
            why = None
            if _within(module, "workflows") and not _within(target, "workflows"):
                why = "workflows imports only workflows"
            elif _within(module, "intake") and not _within(module, "intake.staff") and (
                _within(target, "intake.staff") or _within(target, "referrals")
            ):
                why = "the tipsters' side knows neither the staff desk nor the agencies'"
            elif _within(module, "referrals") and _within(target, "intake.staff"):
                why = "the agencies' side does not import the staff desk"
            elif target in TOP and module not in TOP:
                why = "only wsgi.py (and the factory itself) import the app wiring"
            elif target.split(".")[0] in ("bench", "tests"):
                why = "production code does not import benchmarks or tests"
            if why:
                found.append(f"{module} -> {target} ({why})")
    return found


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in GRAPH:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return groups


def test_imports_run_one_way() -> None:
    assert upward_imports() == []


def test_no_module_imports_itself_round_a_circle() -> None:
    assert import_cycles() == []


def test_the_walk_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: an import inside a function counts; TYPE_CHECKING does not."""
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from referrals import views\n"
        "def later():\n    from intake.staff import case_pages\n    return case_pages\n",
        encoding="utf-8",
    )
    assert imports_of("intake.sample", source) >= {"intake.staff.case_pages"}
    assert "referrals.views" not in imports_of("intake.sample", source)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_walked(package: str) -> None:
    assert any(_within(module, package) for module in GRAPH)
    assert any(GRAPH[module] for module in GRAPH if _within(module, package))
