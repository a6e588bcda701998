"""Dataset registry: name -> the Dataset object that knows its files, cleaning, split rule, tasks,
settings, primary metric and baseline (seqbench.datasets.base describes the interface).

Every module named in MODULES registers the datasets in its REGISTER tuple; the registry's order is
the order datasets appear in reports. Adding a dataset: docs/adding-a-dataset.md.
"""

from __future__ import annotations

import importlib

from seqbench.datasets.base import (
    CHAR_TASK,
    TEXT_TASK,
    CharDataset,
    Dataset,
    DatasetSettings,
    DatasetTraining,
    ForecastDataset,
    RawFile,
    TextDataset,
)
from seqbench.errors import DataError

__all__ = ["CHAR_TASK", "DATASETS", "MODULES", "TEXT_TASK", "CharDataset", "Dataset", "DatasetSettings",
           "DatasetTraining", "ForecastDataset", "RawFile", "TextDataset", "UnknownDataset", "get", "register",
           "task_names"]

MODULES = ("synthetic", "jena", "ett", "cta", "imdb", "shakespeare")
DATASETS: dict[str, Dataset] = {}


class UnknownDataset(DataError, KeyError):
    """A name no module registered (a KeyError too: the registry is a mapping)."""

    __str__ = DataError.__str__  # KeyError's would quote the message


def register(dataset: Dataset) -> Dataset:
    """Add a dataset to the registry (the modules in MODULES do it at import; a test may add its own)."""
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{dataset!r} is not a seqbench.datasets.Dataset")
    if dataset.name in DATASETS:
        raise ValueError(f"dataset {dataset.name!r} is registered twice ({DATASETS[dataset.name]!r}, {dataset!r})")
    fields = dataset.settings.model_fields
    missing = [name for name in dataset.required_settings if name not in fields]
    if missing:
        raise TypeError(f"{dataset!r}: its settings class {dataset.settings.__name__} lacks {missing}, which the "
                        f"{dataset.family} stages read")
    DATASETS[dataset.name] = dataset
    return dataset


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDataset(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def task_names(name: str, settings) -> list[str]:
    """Every task the protocol defines for a dataset (a preset may train a subset)."""
    return get(name).task_names(settings)


for _module in MODULES:
    for _dataset in importlib.import_module(f"{__name__}.{_module}").REGISTER:
        register(_dataset)
