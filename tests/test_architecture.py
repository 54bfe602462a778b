"""The shape of the code: the core's layers and no import circles (import-linter's contracts in pyproject.toml, and a
module-level check of our own), and docs/architecture.md naming every package of the tree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
ROOT_PACKAGES = ("worker", "gui", "bench")


def import_circles(*packages: str) -> list[list[str]]:
    """Every set of modules that import each other in a circle (strongly connected, two or more), imports inside
    functions included; imports under TYPE_CHECKING are left out (they never run)."""
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True)
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in sorted(graph.modules)}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, iterative (no recursion limit on a deep graph)
        work = [(start, iter(edges[start]))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in order:
                    order[target] = low[target] = len(order)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                elif target in on_stack:
                    low[module] = min(low[module], order[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == order[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))

    for module in edges:
        if module not in order:
            visit(module)
    return circles


def test_no_module_imports_itself_through_others():
    sys.path.insert(0, str(ROOT))  # bench/ is not installed
    try:
        assert import_circles(*ROOT_PACKAGES) == []
    finally:
        sys.path.remove(str(ROOT))


def test_the_circle_check_finds_a_new_circle(tmp_path, monkeypatch):
    package = tmp_path / "circled"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circled import b\n")
    (package / "b.py").write_text("def later():\n    from circled import c\n")  # a lazy import still closes a circle
    (package / "c.py").write_text("import circled.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circled import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_circles("circled") == [["circled.a", "circled.b", "circled.c"]]


def test_import_linter_contracts_are_kept():
    """The layers of worker/, no Qt in the core, gui on top, no circles between siblings (pyproject.toml)."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)


def test_architecture_page_names_every_package_and_nothing_else():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:worker|gui)(?:\.\w+)?)`", page))
    packages = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("worker", "gui") for init in (ROOT / top).rglob("__init__.py")
    }
    assert packages - named == set(), "packages the page does not describe"
    assert {name for name in named if "." in name} - packages == set(), "packages the page names that do not exist"
    for package in packages:
        docstring = (ROOT / package.replace(".", "/") / "__init__.py").read_text(encoding="utf-8")
        assert docstring.startswith('"""') and len(docstring) > 80, f"{package}/__init__.py does not say what it owns"
