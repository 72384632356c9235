"""The layer order of docs/architecture.md, checked from the source: every import of every module of
``weaknas_ray`` (module level, inside functions and under ``TYPE_CHECKING`` alike) must point to the same
layer or down, and no two packages may import each other, directly or around a loop.

The unit is a package (``weaknas_ray/engine/``) or a top-level module (``weaknas_ray/config.py``). Imports
inside one package are free. Names loaded by string (the benchmark and method registries'
``"module:function"`` targets, the CLI's ``commands.<name>``) are not imports and are not checked: they
are how an upper layer's registry names a lower layer's code without importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "weaknas_ray"

# Bottom first. A unit may import units of its own layer or of layers below it.
LAYERS: list[set[str]] = [
    {"exceptions", "arguments", "interfaces"},  # 0: interfaces, errors, argument checks: nothing of the project
    {"spaces"},  # 1: architecture arithmetic
    {"benchmarks"},  # 2: locating, checking, caching, loading benchmark data; oracles
    {"predictors"},  # 3
    {"acquisition"},  # 4
    {"engine"},  # 5: ask/tell optimizers
    {"config"},  # 6: the typed run configuration (validates against the registries below)
    {"results"},  # 7: the output folder (the runner streams repeats into it), summaries, figures
    {"drivers"},  # 8: in-process loop, Ray runner, Tune searcher
    {"commands", "cli", "speed", "examples"},  # 9: the weaknas-ray command, the speed benchmarks, worked examples
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
# Imports that break the order, as (importing unit, imported unit), with the reason each is accepted.
# Empty: a new entry needs a reason a reviewer accepts.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path, root: Path = PACKAGE) -> set[str]:
    """Units of ``weaknas_ray`` that the file imports anywhere in its body (``root``: the package folder)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(("weaknas_ray", *path.relative_to(root).parent.parts))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [base] if base != "weaknas_ray" else [f"weaknas_ray.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "weaknas_ray" and len(parts) > 1:
                found.add(parts[1])
    return found


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) -> files of the importer that import it, across units only."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        src = _unit(path)
        for dst in _imported_units(path):
            if dst != src:
                edges.setdefault((src, dst), []).append(str(path.relative_to(PACKAGE.parent)))
    return edges


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in PACKAGE.rglob("*.py") if not (p.name == "__init__.py" and p.parent == PACKAGE)}
    missing = sorted(units - RANK.keys())
    assert not missing, f"units without a layer: {missing}; add each to LAYERS in tests/test_layers.py"


def test_imports_point_down():
    upward = [
        f"{src} (layer {RANK[src]}) imports {dst} (layer {RANK[dst]}) in {', '.join(files)}"
        for (src, dst), files in sorted(_edges().items())
        if RANK.get(dst, -1) > RANK.get(src, -1) and (src, dst) not in EXCEPTIONS
    ]
    assert not upward, "imports that point up the layer order:\n" + "\n".join(upward)


def test_no_package_cycles():
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        if (src, dst) in EXCEPTIONS:
            continue
        graph.setdefault(src, set()).add(dst)
    cycles = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    cycles.append(" -> ".join(trail + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    assert not cycles, "package-level import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_exceptions_are_still_needed():
    stale = sorted(set(EXCEPTIONS) - set(_edges()))
    assert not stale, f"EXCEPTIONS no longer needed (remove them): {stale}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import weaknas_ray.engine.base", {"engine"}),
        ("def f():\n    from weaknas_ray.spaces import base", {"spaces"}),
        ("from weaknas_ray import config, drivers", {"config", "drivers"}),
        ("from ..engine import base", {"engine"}),
        ("import numpy", set()),
    ],
)
def test_the_walker_sees_every_kind_of_import(tmp_path, source, expected):
    """The checker itself: module-level, lazy, ``from package import module`` and relative imports."""
    root = tmp_path / "weaknas_ray"
    (root / "results").mkdir(parents=True)
    path = root / "results" / "x.py"
    path.write_text(source)
    assert _imported_units(path, root) == expected
