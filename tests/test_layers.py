"""The package's import graph has no cycle, and no module imports from a layer above its own.

Layers, bottom up:
  base       errors, io, paths, tasks, windows, archives, device, evaluate, text, formatting, stats, suggest, and the
             helpers below the datasets and the tracking wrapper
  registries the datasets and the models (neither imports the other)
  settings   search_space, params (validated against the registries)
  stages     every stage module and what they share
  graph      the stage table, dvc.yaml, workspaces and the CLI, which put the stages together
Imports inside functions count: a lazy import runs too (seqbench.codedeps reads the same graph)."""

from __future__ import annotations

import pytest

from seqbench import codedeps

BASE = {"seqbench", "seqbench.errors", "seqbench.io", "seqbench.paths", "seqbench.tasks", "seqbench.windows",
        "seqbench.archives", "seqbench.device", "seqbench.evaluate", "seqbench.text", "seqbench.formatting",
        "seqbench.stats", "seqbench.tracking_server", "seqbench.tracking_store", "seqbench.datasets.splitting",
        "seqbench.datasets.rawcsv", "seqbench.datasets.mirror", "seqbench.suggest"}
SETTINGS = {"seqbench.search_space", "seqbench.params"}
GRAPH = {"seqbench.stages", "seqbench.dvcfile", "seqbench.workspace", "seqbench.cli", "seqbench.__main__"}


def layer(module: str) -> int:
    if module in BASE:
        return 0
    if module.startswith(("seqbench.datasets", "seqbench.models")) or module == "seqbench.tracking_buffer":
        return 1
    if module in SETTINGS:
        return 2
    return 4 if module in GRAPH else 3


def imports() -> dict[str, tuple[str, ...]]:
    return {module: codedeps._direct(module)[0] for module in codedeps.modules()}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [(m, t) for m, targets in imports().items() for t in targets if layer(t) > layer(m)]
    assert upward == []


@pytest.mark.parametrize(("package", "other"), [("seqbench.datasets", "seqbench.models"),
                                                ("seqbench.models", "seqbench.datasets")])
def test_the_registries_do_not_import_each_other(package, other):
    crossing = [(m, t) for m, targets in imports().items() if m.startswith(package)
                for t in targets if t.startswith(other)]
    assert crossing == []


def test_the_import_graph_has_no_cycle():
    graph = imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checks_see_a_breach(monkeypatch):
    """The graph these tests read is the real one: a stage import in a dataset module would be caught."""
    graph = dict(imports())
    graph["seqbench.datasets.ett"] = (*graph["seqbench.datasets.ett"], "seqbench.features")
    graph["seqbench.stats"] = ("seqbench.aggregate",)  # aggregate imports stats: a cycle
    monkeypatch.setattr("test_layers.imports", lambda: graph)
    with pytest.raises(AssertionError):
        test_no_module_imports_from_a_layer_above_its_own()
    with pytest.raises(AssertionError):
        test_the_import_graph_has_no_cycle()
