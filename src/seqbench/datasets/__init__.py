"""Dataset registry: name -> family and the module that knows its source, cleaning and protocol.

Each dataset module exposes (used by the stages):
  raw_files(name) -> list[RawFile]            canonical files (empty for generated data)
  standardize(name, raw_dir, settings) -> polars.DataFrame
  tasks(name, settings) -> list[ForecastTask]  forecast datasets only: the protocol's tasks
(the split protocols live in seqbench.split, the encodings in seqbench.features / seqbench.text)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from seqbench.tasks import Family


@dataclass(frozen=True)
class RawFile:
    """A file as its publisher distributes it; looked up by `name` in mirror folders."""

    name: str
    url: str
    sha256: str | None = None  # canonical checksum, when one is known
    size: int | None = None
    md5: str | None = None
    archive: bool = False  # a .zip / .tar.gz to extract after verification


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    family: Family
    module_name: str
    primary_metric: str  # what the leaderboard ranks by
    baseline: str | None = None  # the model skill is measured against (forecasts)
    headline_split: str = "test"  # the split headline numbers are on (the books report validation)

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("synthetic", "forecast", "seqbench.datasets.synthetic", "mae", "naive"),
        DatasetInfo("jena", "forecast", "seqbench.datasets.jena", "mae", "naive"),
        # the long-horizon literature ranks by MSE
        DatasetInfo("etth1", "forecast", "seqbench.datasets.ett", "mse", "naive"),
        DatasetInfo("etth2", "forecast", "seqbench.datasets.ett", "mse", "naive"),
        # Geron's naive forecast is last week's value
        DatasetInfo("cta", "forecast", "seqbench.datasets.cta", "mae", "seasonal_naive", headline_split="val"),
        DatasetInfo("imdb", "text", "seqbench.datasets.imdb", "accuracy"),
        DatasetInfo("shakespeare", "chars", "seqbench.datasets.shakespeare", "bits_per_char", headline_split="val"),
    )
}

TEXT_TASK = "sentiment"
CHAR_TASK = "next_char"


def get(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def task_names(name: str, settings) -> list[str]:
    """Every task the protocol defines for a dataset (a preset may train a subset)."""
    info = get(name)
    if info.family == "forecast":
        return [task.name for task in info.module.tasks(name, settings)]
    return [TEXT_TASK if info.family == "text" else CHAR_TASK]
