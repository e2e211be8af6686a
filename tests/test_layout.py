"""The house keeps its shape: imports point one way, and the domain stays plain Python.

Read from the source with `ast`, function-local imports included, so a cycle cannot hide
inside a function body."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("services", "shared")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imported(path: Path, module: str) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            yield stem
            yield from (f"{stem}.{alias.name}" for alias in node.names)


def _with_parents(target: str) -> Iterator[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = target.split(".")
    yield from (".".join(parts[:end]) for end in range(1, len(parts) + 1))


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {
            found
            for target in _imported(path, name)
            for found in _with_parents(target)
            if found in modules and found != name and not name.startswith(f"{found}.")
        }
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert _cycles(_import_graph()) == []


def test_the_domain_package_knows_nothing_of_grpc_sql_or_the_services():
    forbidden = ("grpc", "google.protobuf", "sqlalchemy", "services", "gongji")
    offenders = {
        name: sorted(
            target
            for target in _imported(path, name)
            if any(target == root or target.startswith(f"{root}.") for root in forbidden)
        )
        for name, path in _modules().items()
        if name.split(".")[0] == "shared"
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
