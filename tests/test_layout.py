"""The house keeps its shape: imports point one way, and the domain stays plain Python.

Read from the source with `ast`, function-local imports included, so a cycle cannot hide
inside a function body."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("services", "shared")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path, root)] = path
    return found


def _stem(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(path: Path, module: str) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            stem = _stem(node, module, is_package)
            yield stem
            yield from (f"{stem}.{alias.name}" for alias in node.names)


def _with_parents(target: str) -> Iterator[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = target.split(".")
    yield from (".".join(parts[:end]) for end in range(1, len(parts) + 1))


def _read_off_packages(path: Path, module: str, modules: dict[str, Path]) -> Iterator[str]:
    """The packages a module reads a name off that is not a submodule (`from pkg import X`, X
    defined in pkg/__init__.py, or `from pkg import *`): that needs the package's __init__ to
    have run to its end."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            stem = _stem(node, module, is_package)
            if stem in modules and any(f"{stem}.{alias.name}" not in modules for alias in node.names):
                yield stem


def _import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Who imports whom. Importing a submodule runs its parent packages first; a module's own
    parents are already running when it does, so only an explicit read off one of them counts
    as an edge to it (when that parent's __init__ imports the module, that is a cycle)."""
    modules = _modules() if modules is None else modules
    return {
        name: {
            found
            for target in _imported(path, name)
            for found in _with_parents(target)
            if found in modules and found != name and not name.startswith(f"{found}.")
        }
        | {package for package in _read_off_packages(path, name, modules) if name.startswith(f"{package}.")}
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


def test_a_submodule_reading_a_name_off_its_own_package_that_imports_it_is_a_cycle(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.part import run\n\nNAME = 'pkg'\n", encoding="utf-8")
    (package / "part.py").write_text("from pkg import NAME\n\n\ndef run():\n    return NAME\n", encoding="utf-8")
    (package / "other.py").write_text("from pkg import part\nfrom pkg.part import run\n", encoding="utf-8")
    graph = _import_graph(_modules(tmp_path, ("pkg",)))
    assert graph == {"pkg": {"pkg.part"}, "pkg.part": {"pkg"}, "pkg.other": {"pkg.part"}}
    assert _cycles(graph) == [["pkg", "pkg.part"]]


def test_a_submodule_importing_a_sibling_through_its_package_is_no_cycle(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.part import run\n", encoding="utf-8")
    (package / "part.py").write_text("from pkg import helper\nfrom . import helper as again\n", encoding="utf-8")
    (package / "helper.py").write_text("VALUE = 1\n", encoding="utf-8")
    assert _cycles(_import_graph(_modules(tmp_path, ("pkg",)))) == []
