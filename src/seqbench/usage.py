"""Checks of a command's arguments against the registries and params.yaml, before a stage starts.

A mistake in an argument (a misspelled model, a model that cannot train on the dataset, a seed or a
regime the benchmark does not run) is a UsageError: the CLI prints its one line and exits with status 2,
before anything is written or logged to MLflow.
"""

from __future__ import annotations

from seqbench import datasets as dataset_registry
from seqbench import models as model_registry
from seqbench.errors import SeqbenchError
from seqbench.params import REGIMES, Params
from seqbench.suggest import unknown
from seqbench.tasks import FAMILY_KINDS


class UsageError(SeqbenchError):
    """A command-line argument the command cannot use; the message names it and the fix."""


def check_dataset(name: str) -> None:
    if name not in dataset_registry.DATASETS:
        raise UsageError(f"--dataset: {unknown('dataset', name, dataset_registry.DATASETS)}")


def check_model(name: str) -> None:
    if name not in model_registry.REGISTRY:
        raise UsageError(f"--model: {unknown('model', name, model_registry.REGISTRY)} "
                         "(`python -m seqbench models` lists each with the tasks it handles)")


def trained_tasks(params: Params, dataset: str) -> list | None:
    """The forecast tasks a job on `dataset` trains under the preset; None for text and chars (one task)."""
    info = dataset_registry.get(dataset)
    if info.family != "forecast":
        return None
    chosen = params.budget(dataset).tasks
    return [t for t in info.tasks(params.dataset(dataset)) if chosen is None or t.name in chosen]


def check_fits(params: Params, dataset: str, model: str) -> None:
    """The model must handle at least one task the job would train (else every task would be skipped)."""
    entry, family = model_registry.get(model), dataset_registry.get(dataset).family
    tasks = trained_tasks(params, dataset)
    if tasks is None:
        if any(kind in entry.kinds for kind in FAMILY_KINDS[family]):
            return
        trains = f"is a {family} dataset ({', '.join(FAMILY_KINDS[family])})"
    else:
        if any(entry.supports(task) for task in tasks):
            return
        trains = f"trains {', '.join(t.name for t in tasks) or 'no task'} ({family}) under preset {params.preset}"
    handles = ("univariate " if entry.univariate_only else "") + ", ".join(entry.kinds)
    raise UsageError(f"--model {model} does not fit dataset {dataset!r}: it handles {handles} tasks, and {dataset} "
                     f"{trains}; pick a model for {family} tasks (`python -m seqbench models` lists what each handles)")


def check_train(params: Params, dataset: str, model: str, seed: int, regime: str, allow_extra_seed: bool) -> None:
    """Every argument of `python -m seqbench train`, in the order a user reads them."""
    check_dataset(dataset)
    check_model(model)
    if regime not in REGIMES:
        raise UsageError(f"--regime: {unknown('regime', regime, REGIMES)}")
    if regime not in params.regimes:
        raise UsageError(f"--regime {regime}: params.yaml regimes are {params.regimes}; add {regime!r} to "
                         "regimes in params.yaml to train it")
    if seed not in params.seeds and not allow_extra_seed:
        raise UsageError(f"--seed {seed}: params.yaml seeds are {params.seeds}, and the run would join the "
                         "benchmark's results and MLflow experiments; add it to seeds in params.yaml, or pass "
                         "--allow-extra-seed for a run outside the list")
    check_fits(params, dataset, model)


def check_preset(params: Params, name: str) -> None:
    if name not in params.presets:
        raise UsageError(f"--preset: {unknown('preset', name, params.presets)} (the presets of params.yaml)")
