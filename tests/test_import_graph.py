"""The package's import graph: no cycles between modules, and nothing imports the package root.

import-linter (pyproject) holds the order of the layers; this finds what it does not: cycles
inside a layer, lazy (function-level) imports included, as grimp reports them.
"""

from __future__ import annotations

import grimp

PACKAGE = "tisdiss_cli"


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles() -> None:
    assert import_cycles(grimp.build_graph(PACKAGE, cache_dir=None)) == []


def test_no_module_imports_the_package_root() -> None:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    assert graph.find_modules_that_directly_import(PACKAGE) == set()


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert import_cycles(graph) == [["a.b", "a.c"]]
