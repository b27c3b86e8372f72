"""The house of wings (docs/architecture.md) holds: the import-linter contracts in pyproject.toml are kept, no import
circle stands (counting function-level and TYPE_CHECKING imports, which are real dependencies), every wing says
what it is for and which wings it may import, and every wing ships in the wheel."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LAYERS = next(c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["type"] == "layers")["layers"]
WINGS = [w.strip() for layer in LAYERS for w in layer.split("|")]


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_the_circle_finder_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_stands():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("ldmpick", cache_dir=None)  # counts every import statement, lazy and TYPE_CHECKING
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert circles(edges) == []


def test_the_layer_contracts_are_kept(monkeypatch, tmp_path):
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    monkeypatch.chdir(tmp_path)  # import-linter may write a cache in the working folder
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


@pytest.mark.parametrize("wing", WINGS)
def test_every_wing_says_what_it_is_for_and_ships(wing):
    if wing == "cli":
        return
    module = importlib.import_module(f"ldmpick.{wing}")
    assert module.__doc__ and len(module.__doc__.split()) >= 15, f"ldmpick/{wing}/__init__.py needs a docstring"
    assert re.search(r"[Ii]mports|sits above|bottom layer|only ``cli``|the wings below", module.__doc__), wing
    assert f"ldmpick.{wing}" in PYPROJECT["tool"]["setuptools"]["packages"], f"ldmpick.{wing} is not in the wheel"


def test_every_package_folder_is_a_wing_or_data():
    folders = {p.name for p in (ROOT / "ldmpick").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(WINGS) | {"data", "demo_models"}, folders ^ (set(WINGS) | {"data", "demo_models"})
    assert not [p.name for p in (ROOT / "ldmpick").glob("*.py") if p.name != "__init__.py"], \
        "a module at the top of ldmpick/ belongs in a wing"
