"""What a dataset module provides: a Dataset subclass (the stages call only its methods), its settings
class (its block of params.yaml) and the files it is made from. docs/adding-a-dataset.md walks through
one.

Below the stages: this module and the dataset modules import no stage (download, standardize, split,
features, ...). polars is imported inside the methods that use it: params validation imports every
dataset module for its settings and tasks, and should not pay for polars.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from seqbench.archives import ExtractLimits
from seqbench.tasks import Family, ForecastTask, InstanceNorm

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from seqbench.datasets.splitting import Splits

TEXT_TASK = "sentiment"
CHAR_TASK = "next_char"


@dataclass(frozen=True)
class RawFile:
    """A file as its publisher distributes it; looked up by `name` in mirror folders."""

    name: str
    url: str
    sha256: str | None = None  # canonical checksum, when one is known
    size: int | None = None
    md5: str | None = None
    archive: bool = False  # a .zip / .tar.gz to extract after verification
    # what extracting it may write: set from the real archive with a margin (data.extract_limits overrides)
    limits: ExtractLimits | None = None

    def __post_init__(self) -> None:
        if self.archive and self.limits is None:
            raise ValueError(f"{self.name}: an archive needs ExtractLimits (from the real archive's size)")


@dataclass(frozen=True)
class Range:
    """A numeric column's physical bounds, inclusive (seqbench.datasets.checks.check_ranges)."""

    low: float
    high: float
    why: str  # what the column measures and why the bounds hold (shown in the error)


# --- settings: each dataset's block of params.yaml ----------------------------------------------------
OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop", "nadam"]


class DatasetSettings(BaseModel):
    """Base of a dataset's settings class: unknown keys are errors, values are frozen. Fields are the
    subclass's own, in params.yaml's order; every one ends with `training: DatasetTraining`."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetTraining(DatasetSettings):
    batch_size: PositiveInt
    loss: Literal["mse", "mae", "huber", "bce", "cross_entropy"]
    optimizer: OptimizerName
    lr: PositiveFloat
    momentum: float | None = Field(default=None, ge=0, lt=1)
    weight_decay: float | None = Field(default=None, ge=0)
    # how learned forecast models read their inputs under this protocol (a model's own settings may
    # override): RevIN-style instance normalization, channel independence (seqbench.models.input_handling)
    instance_norm: InstanceNorm = "none"
    channel_independent: bool = False


def _check_fractions(value: tuple[float, float, float]) -> tuple[float, float, float]:
    if any(f <= 0 for f in value):
        raise ValueError(f"split fractions must all be > 0, got {list(value)}")
    if abs(sum(value) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must add up to 1, got {list(value)} (sum {sum(value):g})")
    return value


Fractions = Annotated[tuple[float, float, float], AfterValidator(_check_fractions)]


# --- the interface -------------------------------------------------------------------------------------
class Dataset(ABC):
    """One dataset. The stages call these methods and nothing else:

    download     raw_files(), extract_skip, check_extracted(folder)
    standardize  standardize(raw_dir, settings) -> the table, schema(settings) -> its columns
    split        split(table, settings, source) -> Splits (the protocol's train/val/test)
    features     the family's encoding (ForecastDataset adds series/scaling hooks)
    params       settings (the class of its params.yaml block), task_names(settings)
    aggregate    primary_metric (what the leaderboard ranks by), baseline (what skill is measured against)
    """

    family: ClassVar[Family]
    settings: ClassVar[type[DatasetSettings]]
    primary_metric: ClassVar[str]
    baseline: ClassVar[str | None] = None
    # the split of the headline numbers: the books report CTA and Shakespeare on validation
    headline_split: ClassVar[str] = "test"
    extract_skip: ClassVar[tuple[str, ...]] = ()  # archive path prefixes not extracted
    # the settings fields the family's stages read (checked when the dataset is registered)
    required_settings: ClassVar[tuple[str, ...]] = ("training",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def raw_files(self) -> list[RawFile]:
        """The files to download (none for generated data)."""
        return []

    def check_extracted(self, folder: Path) -> None:
        """Called on a complete extraction of an archive held to the canonical checksums (not on a copy a
        mirror's SHA256SUMS vouches for); raise DataError to refuse it."""

    @abstractmethod
    def schema(self, settings) -> dict[str, pl.DataType]:
        """The standard table's columns and types, in order (a contract with split and features)."""

    @abstractmethod
    def standardize(self, raw_dir: Path, settings) -> pl.DataFrame:
        """Raw files -> the standard table; DataError naming file, line, column and value on bad data."""

    @abstractmethod
    def split(self, table: pl.DataFrame, settings, source: str) -> Splits:
        """The protocol's train/val/test of the standard table (pure; `source` names it in errors)."""

    @abstractmethod
    def task_names(self, settings) -> list[str]:
        """Every task the protocol defines (a preset may train a subset)."""


class ForecastDataset(Dataset):
    """A time series: features scales it (train-split statistics unless `scaling` fixes them) and
    windows it by `tasks`."""

    family = "forecast"
    required_settings = ("training", "lookback", "season")
    metric_units: ClassVar[str] = "original"  # "scaled": metrics on the scaled series, as the literature does

    @abstractmethod
    def tasks(self, settings) -> list[ForecastTask]:
        """The protocol's forecasting tasks over the series columns."""

    def task_names(self, settings) -> list[str]:
        return [task.name for task in self.tasks(settings)]

    def series_columns(self, settings) -> tuple[str, ...]:
        """The series' columns, in order: by default every column of the standard table but timestamp."""
        return tuple(c for c in self.schema(settings) if c != "timestamp")

    def series(self, table: pl.DataFrame, settings, source: str) -> pl.DataFrame:
        """The standard table's rows (train|val|test) -> one Float64 column per series column."""
        import polars as pl

        return table.select(pl.col(c).cast(pl.Float64) for c in self.series_columns(settings))

    def scaling(self, columns: tuple[str, ...], settings) -> tuple[np.ndarray, np.ndarray] | None:
        """Fixed (mean, scale) per column (C,), or None to standardize with the train rows' statistics."""
        return None


class TextDataset(Dataset):
    """Labelled documents: the standard table has split, label, id and text; features builds the
    vocabulary from the train texts."""

    family = "text"
    required_settings = ("training", "max_tokens", "sequence_length")

    def task_names(self, settings) -> list[str]:
        return [TEXT_TASK]


class CharDataset(Dataset):
    """One corpus, one row of `text`: features encodes its characters; training samples from a prompt."""

    family = "chars"
    required_settings = ("training", "window", "lowercase", "sample_prompt", "sample_length")

    def task_names(self, settings) -> list[str]:
        return [CHAR_TASK]
