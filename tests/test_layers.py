"""The library's import graph follows its layers (README, "Layout"), and never reaches the papers.

Every ``import``/``from … import`` of a ``kfree`` module, at any depth in a function, is read from
the source with :mod:`ast`; a module may import its own layer or a lower one, never a higher one.
The reproductions live beside the library (``reproductions/``): the library must not import them.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: lowest first; a module belongs to the first entry that is a prefix of its dotted name
LAYERS: list[tuple[str, ...]] = [
    # 0 core: errors, the threshold type, typed configs, registries, distances, small utilities
    ("kfree._version", "kfree.exceptions", "kfree.threshold", "kfree.config", "kfree.registry",
     "kfree._exact_distances", "kfree.distances", "kfree.utils"),
    # 1 data in, scores out
    ("kfree.data", "kfree.metrics"),
    # 2 the pieces: losses, networks, clustering algorithms
    ("kfree.losses", "kfree.embed", "kfree.cluster"),
    # 3 held-out scoring and threshold calibration
    ("kfree.evaluate",),
    # 4 the training loop
    ("kfree.train",),
    # 5 the estimator that ties them together
    ("kfree.learner",),
    # 6 figures and pages
    ("kfree.report",),
    # 7 end-to-end workflows
    ("kfree.demo",),
    # 8 the command line
    ("kfree.cli", "kfree.__main__"),
]
#: the package root is the public facade (lazy re-exports): above everything, matched exactly
FACADE = "kfree"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int:
    if module == FACADE:
        return len(LAYERS)
    best, best_len = None, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to the README's layout")
    return best


@functools.cache  # each file is read once per process: the per-file tests and the graph share it
def _imports(path: Path) -> tuple[tuple[int, str], ...]:
    """(line, absolute module) for every import in the file, relative ones resolved."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from . import mod`` imports the module ``.mod``; ``from .x import name`` imports ``.x``
            for a in node.names:
                sub = f"{target}.{a.name}"
                is_module = (SRC / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    SRC / Path(*sub.split(".")) / "__init__.py").exists()
                out.append((node.lineno, sub if is_module else target))
    return tuple(out)


FILES = sorted(SRC.joinpath("kfree").rglob("*.py"))


def test_every_module_has_a_layer():
    for f in FILES:
        _layer(_module_name(f))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_reaches_up_a_layer_or_into_the_reproductions(path):
    me = _module_name(path)
    mine = _layer(me)
    bad = []
    for line, target in _imports(path):
        if target.startswith("kfree_reproductions"):
            bad.append(f"line {line}: {target} (the library must not import the reproductions)")
        elif (target == "kfree" or target.startswith("kfree.")) and _layer(target) > mine:
            bad.append(f"line {line}: {target} (layer {_layer(target)} > {mine})")
    assert not bad, f"{me} (layer {mine}) imports upwards:\n" + "\n".join(bad)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule would catch a violation (guards against a checker that reads nothing)."""
    fake = SRC / "kfree" / "metrics" / "clustering.py"
    found = [t for _, t in _imports(fake)]
    assert "kfree.exceptions" in found  # relative import resolved
    assert _layer("kfree.learner") > _layer("kfree.metrics.clustering")
    assert _layer("kfree.cluster.threshold_hac") == 2 and _layer("kfree.cli.app") == len(LAYERS) - 1


def _reach(start: str, graph: dict[str, set[str]]) -> dict[str, str]:
    """Every module ``start`` imports, at any depth (lazy imports in functions too), each with
    the module that imports it."""
    seen, todo = {start: start}, [start]
    while todo:
        m = todo.pop()
        for t in graph.get(m, ()):
            if t not in seen:
                seen[t] = m
                todo.append(t)
    return seen


def test_cluster_and_metrics_never_import_torch():
    """The clustering algorithms and the metrics run without torch (a user clusters features made
    elsewhere, and ``kfree cluster`` with no model starts fast): no module of ``cluster/`` or
    ``metrics/``, nor any kfree module they import, imports torch, at any depth."""
    graph = {_module_name(f): {t for _, t in _imports(f)} for f in FILES}
    for name in graph:  # importing a module imports its packages (the facade's re-exports are lazy)
        graph[name] |= {name.rsplit(".", i)[0] for i in range(1, name.count("."))}
    graph[FACADE] = set()
    bad = []
    for me in [m for m in graph if m.startswith(("kfree.cluster", "kfree.metrics"))]:
        reached = _reach(me, graph)
        for t, via in reached.items():
            if t == "torch" or t.startswith("torch."):
                bad.append(f"{me} reaches {t} (imported by {via})")
    assert not bad, "\n".join(sorted(bad)[:10])
    assert "torch" in _reach("kfree.losses.ball_cluster", graph)  # (the check reads lazy imports)
