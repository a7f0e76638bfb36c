"""The layout is the design: imports point one way (command line -> online loader -> tuning ->
engine -> analysis -> records), with no circle anywhere, counting imports inside functions and under
``TYPE_CHECKING``; no module grows past the size a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "loadertune"
# Lower layers never import higher ones; layers of one rank (the engine, the renderers) never
# import each other. The package root (the public API) and __main__ sit on top.
RANK = {
    "records": 0,
    "analysis": 1,
    "engine": 2,
    "report": 2,
    "tuning": 3,
    "online": 4,
    "cli": 5,
    "lightning": 5,
    "": 6,
}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("loadertune", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> set[str]:
    """Every loadertune module ``name`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {_module_of(t) for t in targets if t.startswith("loadertune")} - {name, None}


def _module_of(target: str) -> str | None:
    """The module a dotted import name lands in (``pkg.mod.Name`` -> ``pkg.mod``)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer() -> None:
    assert {_layer(name) for name in MODULES} <= set(RANK)


def test_no_import_circle() -> None:
    assert _cycles(GRAPH) == []


def test_imports_point_down() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in sorted(targets)
        if _layer(target) != _layer(name) and RANK[_layer(target)] >= RANK[_layer(name)]
    ]
    assert upward == []


def test_the_checks_see_a_circle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert RANK[_layer("loadertune.records.trial")] < RANK[_layer("loadertune.analysis.verdict")]
    # an import inside a function counts: the result record reads no analysis, even lazily
    assert "loadertune.analysis.verdict" not in GRAPH["loadertune.records.result"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"
