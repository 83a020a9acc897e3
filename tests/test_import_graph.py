"""The packages' import graph, read from the source: no cycle between modules, nothing importing upward.

`previews/` (image work) and `cache/` (the tiers) are libraries that `proxy/` (the HTTP face) uses:
`previews/` imports nothing from `proxy/` or `cache/`, and `cache/` nothing from `previews/` or `proxy/`.
Imports inside functions count too: a lazy import still ties the two modules together. Only `proxy/`
reads the environment (in `proxy/settings/`); the libraries take frozen values.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("proxy", "previews", "cache")
# What each package may not import.
FORBIDDEN = {"previews": ("proxy", "cache"), "cache": ("previews", "proxy")}
# How code reads the process environment or parses settings from it.
ENVIRONMENT_READS = ("os.environ", "os.getenv", "def from_env")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))}


def imported_names(path: Path, name: str) -> Iterator[str]:
    """Every module `path` imports (absolute, or relative resolved against `name`), at any depth."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from package import module` names a module too.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's import counts as its __init__)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        edges = set()
        for target in imported_names(path, name):
            if target in known and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in sorted(graph[node]):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
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


def test_the_graph_is_read_from_every_module() -> None:
    graph = import_graph()
    assert {"proxy.app", "previews.render", "cache.disk_tier"} <= graph.keys()
    assert "proxy.config" in graph["proxy.app"]  # edges are found, so an empty result means something


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_libraries_do_not_import_upward(package: str) -> None:
    upward = sorted(f"{name} -> {target}" for name, targets in import_graph().items() if name.split(".")[0] == package
                    for target in targets if target.split(".")[0] in FORBIDDEN[package])
    assert upward == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_libraries_do_not_read_the_environment(package: str) -> None:
    readers = sorted(f"{path.relative_to(REPO)}: {needle}" for path in (REPO / package).rglob("*.py")
                     for needle in ENVIRONMENT_READS if needle in path.read_text())
    assert readers == []


def test_the_checks_catch_what_they_are_for() -> None:
    # Negative controls: a cycle (direct and through a third module) and its absence.
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_folder_holds_more_than_a_dozen_modules() -> None:
    crowded = {str(folder.relative_to(REPO)): count for package in PACKAGES
               for folder in [REPO / package, *(p for p in (REPO / package).rglob("*") if p.is_dir())]
               if (count := len([m for m in folder.glob("*.py") if m.name != "__init__.py"])) > 12}
    assert crowded == {}
