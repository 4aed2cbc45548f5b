"""The structure stays readable: data flows one way, and functions fit on a screen.

- no import circle between any two modules (imports inside functions and under
  ``TYPE_CHECKING`` count: a circle hidden there is still a circle);
- collectors import nothing from the inventory's parser, renderers nothing from
  the engine or the collector registry: they get plain types;
- no function longer than 60 lines outside the lab (a builder of test hosts) and
  the tests.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import REPO

#: Where each installed package's source lives (setuptools package-dir).
SOURCES = {
    "driftcheck": REPO / "driftcheck",
    "driftcheck.collectors": REPO / "collectors",
    "driftcheck.reports": REPO / "reports",
}
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name."""
    out: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[0] in ("collectors", "reports") and package == "driftcheck":
                continue  # symlinked views, if any, are the other entries
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of ours that module ``name`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from pkg import sub" imports the module pkg.sub when there is one.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        yield from (t for t in targets if t in known and t != name)


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(name, path, known)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read_right() -> None:
    edges = graph()
    assert "driftcheck.findings" in edges["driftcheck.drift"]
    assert "driftcheck.collectors.base" in edges["driftcheck.collectors.files"]
    assert "driftcheck.collectors.apps" in edges["driftcheck.collectors"]


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_circle_finder_finds_circles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_collectors_import_nothing_from_the_inventory_parser() -> None:
    edges = graph()
    offenders = {
        name: sorted(edges[name] & {"driftcheck.inventory", "driftcheck.rules"})
        for name in edges
        if name.startswith("driftcheck.collectors")
    }
    assert {n: i for n, i in offenders.items() if i} == {}


def test_renderers_read_the_report_types_not_the_engine() -> None:
    edges = graph()
    engine = {"driftcheck.drift", "driftcheck.collectors", "driftcheck.pipeline"}
    offenders = {
        name: sorted(edges[name] & engine)
        for name in edges
        if name.startswith("driftcheck.reports")
    }
    assert {n: i for n, i in offenders.items() if i} == {}


def test_no_function_longer_than_a_screen() -> None:
    roots = [REPO / "driftcheck", REPO / "collectors", REPO / "reports", REPO / "bench"]
    long = []
    for root in roots:
        for path in root.rglob("*.py"):
            if "lab" in path.relative_to(REPO).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long.append(
                            f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length})"
                        )
    assert long == []
