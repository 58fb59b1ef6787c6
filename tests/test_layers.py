"""The package's layers: no import cycles between subpackages, and nothing imports upward.

Every module of ``src/midiforge`` is parsed with :mod:`ast`; every ``import`` and ``from ...
import`` counts, also the ones inside functions (a lazy import is still a dependency). Each
import is mapped to its *unit*: the subpackage it lies in (``midiforge.data.encode`` → ``data``)
or, for a top-level module, the module (``midiforge.errors`` → ``errors``). The units are ranked
by :data:`LAYERS`, lowest first; a unit may import its own layer's units and lower ones only,
and the graph of units must have no cycle (also within one layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "midiforge"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# Lowest first; docs/architecture.md draws the same picture.
LAYERS: list[tuple[str, ...]] = [
    (
        "errors",
        "config",
        "assets",
        "device",
        "schema",
        "instruments",
        "pitches",
        "chords",
        "bars",
        "style_parts",
        "style_scale",
    ),  # foundation: no midiforge imports above
    ("io",),  # reading and writing music files (symusic, music21, audio)
    ("kernels",),  # compiled kernels the models call
    ("models",),  # model families: a batch in, a loss out
    ("store",),  # every on-disk format: DATASET dir, RUN dir, shipped model, listings
    ("data",),  # corpus scan/clean/split, encodings, prepare, torch windows
    ("sampling", "metrics"),  # samplers and generate; evaluation
    ("training",),  # the trainer and the train stage (it may sample and score: audit, benchmark)
    ("web", "cli", "api", PACKAGE, "__main__"),  # front ends and the public facade
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _unit(module: str) -> str:
    """``midiforge.data.encode`` → ``data``; ``midiforge.errors`` → ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every midiforge import in ``tree``, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"  # `from midiforge import api` imports a module
                found.append((node.lineno, child if child in MODULES else base))
    ours = {(line, name) for line, name in found if name.split(".")[0] == PACKAGE}
    return sorted(ours)


def _edges() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, "file:line imports module") for every cross-unit import."""
    edges = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in _imported(tree, module, path.name == "__init__.py"):
            src, dst = _unit(module), _unit(target)
            if src != dst:
                where = f"{path.relative_to(SRC.parents[1])}:{line} imports {target}"
                edges.append((src, dst, where))
    return edges


def _cycles(edges: list[tuple[str, str, str]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges:
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_unit_has_a_layer() -> None:
    units = {_unit(m) for m in MODULES}
    missing = sorted(units - set(RANK))
    assert not missing, f"place these in tests/test_layers.py LAYERS (and the docs): {missing}"


def test_no_import_goes_to_a_higher_layer() -> None:
    upward = [
        f"{where} ({src} is layer {RANK[src]}, {dst} is layer {RANK[dst]})"
        for src, dst, where in _edges()
        if src in RANK and dst in RANK and RANK[dst] > RANK[src]
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_cycle_between_units() -> None:
    edges = _edges()
    problems = []
    for group in _cycles(edges):
        members = set(group)
        lines = [w for s, d, w in edges if s in members and d in members]
        problems.append(" <-> ".join(group) + ":\n  " + "\n  ".join(lines))
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_the_checker_sees_nested_and_relative_imports() -> None:
    """The parser itself: a lazy import inside a function and a relative import both count."""
    source = (
        "from . import encode\n"
        "def f():\n"
        "    from midiforge.training.run import train\n"
        "    import midiforge.store.names\n"
    )
    found = _imported(ast.parse(source), "midiforge.data.prepare", is_package=False)
    assert [name for _, name in found] == [
        "midiforge.data.encode",
        "midiforge.training.run",
        "midiforge.store.names",
    ]
    edges = [("a", "b", "x"), ("b", "c", "y"), ("c", "a", "z"), ("c", "d", "w")]
    assert _cycles(edges) == [["a", "b", "c"]]
