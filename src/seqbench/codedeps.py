"""What source files a stage's result depends on, computed from the code itself.

A module depends on every seqbench module it imports (at the top or inside a function: a lazy import
runs too) and on every file beside it whose name it spells as a string (`cells.cpp`, compiled at run
time). The modules the registries name (a model's builders, a dataset's module) are plugins: shared
code reaches them only through the registries, by name, so a job depends on the plugins of its own model
and dataset (and what they import), not on every plugin.

Settings schemas (`params.py`, `models/settings.py`) are left out on purpose: what they decide reaches
a job as values (its resolved settings, `seqbench.configure`), and both orchestrators compare those
values, so a changed default reruns exactly the jobs whose settings it changes.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "seqbench"
ROOT = Path(__file__).resolve().parent  # src/seqbench
TRACKED_BY_VALUE = frozenset({"seqbench.params", "seqbench.models.settings"})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the package -> its file."""
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


@functools.cache
def plugins() -> frozenset[str]:
    """The modules the registries name: each model's builders and each dataset's module."""
    from seqbench import datasets, models

    named = {dataset_module(name) for name in datasets.DATASETS}
    named |= {module for entry in models.REGISTRY.values() for module in entry.modules()}
    return frozenset(named)


def dataset_module(name: str) -> str:
    """The module defining a registered dataset's class."""
    from seqbench import datasets

    return type(datasets.get(name)).__module__


def is_plugin(name: str) -> bool:
    return name in plugins()


@functools.cache
def _direct(name: str) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """(seqbench modules imported anywhere in `name`, sibling files named in its strings)."""
    path = modules()[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    files: list[Path] = []
    siblings = {p.name for p in path.parent.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from .y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import submodule`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in siblings:
            files.append(path.parent / node.value)
    known = modules()
    imported = []
    for target in found:
        while target and target not in known:  # `import seqbench.models.cells` names its packages too
            target = target.rpartition(".")[0]
        if target and target != name:
            imported.append(target)
    return tuple(dict.fromkeys(imported)), tuple(dict.fromkeys(files))


def closure(*entries: str, follow_plugins: bool = False, settings_by_value: bool = True) -> list[Path]:
    """Source files of `entries` and everything they import, in a stable order.

    Plugins are followed only from a module that is itself a plugin (a builder importing its helpers),
    unless follow_plugins. The settings schemas are left out unless settings_by_value is False (the
    configure stage, which turns them into the values the other stages compare)."""
    skipped = TRACKED_BY_VALUE if settings_by_value else frozenset()
    seen: dict[str, None] = {}
    files: dict[Path, None] = {}
    stack = [e for e in entries if e not in skipped and e in modules()]  # a test's own dataset lies outside
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen[name] = None
        imported, siblings = _direct(name)
        files.update(dict.fromkeys(siblings))
        for target in imported:
            if target in skipped:
                continue
            if is_plugin(target) and not (follow_plugins or is_plugin(name)):
                continue
            stack.append(target)
    files.update({modules()[name]: None for name in seen})
    return sorted(files)


def relative(paths: list[Path]) -> list[str]:
    """Project-relative POSIX paths, src/seqbench/... (what dvc.yaml and the Snakemake rules name)."""
    source_root = ROOT.parent.parent  # the project whose src/ holds the package
    return [path.relative_to(source_root).as_posix() for path in paths]


def schemas() -> list[Path]:
    """The settings schemas' files (what TRACKED_BY_VALUE names)."""
    return sorted(modules()[name] for name in TRACKED_BY_VALUE)


def job_code(stage_module: str, dataset: str | None = None, model: str | None = None) -> list[Path]:
    """The code of one job: its stage module's closure and its own dataset's and model's plugins."""
    from seqbench import models

    entries = [stage_module]
    if dataset is not None:
        entries.append(dataset_module(dataset))
    if model is not None:
        entries += models.get(model).modules()
    return closure(*entries)


def digest(paths: list[Path]) -> str:
    """sha256 over the files' names and bytes: what a result computed by this code is keyed by."""
    import hashlib

    value = hashlib.sha256()
    for path in paths:
        value.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return value.hexdigest()
