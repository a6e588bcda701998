"""params.yaml -> one typed, frozen, validated object. The only place settings are parsed.

Every stage and both orchestrators go through `load_params`; an unknown key, a wrong type or an
impossible value raises ParamsError naming the key before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from seqbench import datasets as dataset_registry
from seqbench import models as model_registry
from seqbench.datasets.base import DatasetSettings, OptimizerName
from seqbench.models.settings import ModelSettings
from seqbench.search_space import SearchDim, TuneBudget, check_space
from seqbench.suggest import allowed_keys, did_you_mean, unknown
from seqbench.tasks import FAMILY_KINDS

JOB_GROUPS = ("forecast", "statistical", "text", "chars")
# protocol: the books' and papers' settings; tuned: the settings an equal-budget search chose on validation
REGIMES = ("protocol", "tuned")
Regime = Literal["protocol", "tuned"]


class TrainJob(NamedTuple):
    """One training job of the job lists: runs/<dataset>/<model>/<regime>/seed<seed>/."""

    group: str
    dataset: str
    model: str
    seed: int
    regime: str


class ParamsError(ValueError):
    """Invalid settings; the message names the file and key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- what runs -------------------------------------------------------------------------------------
class JobGroup(Strict):
    datasets: list[str]
    models: list[str]


class Jobs(Strict):
    forecast: JobGroup
    statistical: JobGroup
    text: JobGroup
    chars: JobGroup


class ExtractLimitsSettings(Strict):
    max_bytes: PositiveInt | None = None
    max_ratio: float | None = Field(default=None, gt=1)


class DataSettings(Strict):
    mirrors: list[str] = []
    retries: PositiveInt = 3
    timeout_s: PositiveFloat = 60
    on_missing: Literal["skip", "fail"] = "skip"
    # per dataset: bounds on what extracting its archives may write (default: the dataset module's)
    extract_limits: dict[str, ExtractLimitsSettings] = {}


    @field_validator("extract_limits")
    @classmethod
    def _archive_datasets(cls, value: dict[str, ExtractLimitsSettings]) -> dict[str, ExtractLimitsSettings]:
        for name in value:
            if name not in dataset_registry.DATASETS:
                raise ValueError(unknown("dataset", name, dataset_registry.DATASETS))
            if not any(raw.archive for raw in dataset_registry.get(name).raw_files()):
                raise ValueError(f"dataset {name!r} has no archive to extract")
        return value


def _dataset_settings(value: Any) -> dict[str, DatasetSettings]:
    """params.yaml `datasets`: one block per registered dataset, validated by that dataset's settings class."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of dataset name -> settings")
    names = [name for name in value if name not in dataset_registry.DATASETS]
    if names:
        raise ValueError(unknown("datasets", names, dataset_registry.DATASETS))
    missing = [name for name in dataset_registry.DATASETS if name not in value]
    if missing:
        raise ValueError(f"no settings block for the registered datasets {missing}")
    out = {}
    for name, settings in value.items():
        settings_class = dataset_registry.get(name).settings
        try:
            out[name] = settings_class.model_validate(settings)
        except ValidationError as error:
            raise ValueError("; ".join(_format(error, f"datasets.{name}", settings_class))) from None
    return out


# --- budgets ---------------------------------------------------------------------------------------
class ModelBudget(Strict):
    """One model's budget on top of its dataset's: a cut for a slow architecture under a CPU preset, or
    more windows (and its own lr for the dataset's optimizer) for the model a target is set for."""

    train_stride: PositiveInt | None = None
    max_train_samples: PositiveInt | None = None
    max_epochs: PositiveInt | None = None
    patience: NonNegativeInt | None = None
    lr: PositiveFloat | None = None
    tasks: list[str] | None = None  # a subset of the dataset's tasks (an architecture a task's cost leaves out)


class Budget(Strict):
    train_stride: PositiveInt | None = None  # keep every k-th training window
    max_train_samples: PositiveInt | None = None  # then cap (evenly spaced, so the whole split is covered)
    max_eval_samples: PositiveInt | None = None
    max_epochs: PositiveInt | None = None
    patience: NonNegativeInt | None = None
    tasks: list[str] | None = None  # None: every task of the protocol
    # A faster-converging optimizer for a short budget (the protocol's one may need the book's epochs);
    # it comes with its own learning rate. Data, windows, loss and metrics stay the protocol's.
    optimizer: OptimizerName | None = None
    lr: PositiveFloat | None = None
    # linear: epoch e of N trains at lr * (1 - (e - 1) / N), so a short budget ends on small steps
    lr_decay: Literal["none", "linear"] | None = None
    models: dict[str, ModelBudget] = {}  # per-model cuts on top (evaluation stays the same for all)

    @model_validator(mode="after")
    def _optimizer_with_lr(self) -> "Budget":
        if self.optimizer is not None and self.lr is None:
            raise ValueError(f"optimizer {self.optimizer!r} needs its own lr (the protocol's belongs to its optimizer)")
        return self

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: dict[str, ModelBudget]) -> dict[str, ModelBudget]:
        names = [name for name in value if name not in model_registry.REGISTRY]
        if names:
            raise ValueError(unknown("models", names, model_registry.REGISTRY))
        return value


class Preset(Strict):
    max_epochs: PositiveInt
    patience: NonNegativeInt
    budgets: dict[str, Budget] = {}
    tune: dict[str, TuneBudget] = {}  # what one search may spend: `default`, then per dataset
    jobs: Jobs | None = None  # used by `seqbench workspace` only (see params.yaml)
    seeds: list[NonNegativeInt] | None = None
    regimes: list[Regime] | None = None


class TrainingDefaults(Strict):
    device: str = "auto"
    # torch CPU threads per training job, by job group; both orchestrators pass the same value (thread
    # count can change float summation order, and Snakemake and DVC must give the same metrics)
    threads: dict[Literal["forecast", "statistical", "text", "chars"], PositiveInt] = {
        "forecast": 1, "statistical": 1, "text": 1, "chars": 1}
    clip_norm: PositiveFloat | None = 1.0
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    mixed_precision: bool = True
    min_delta: float = Field(default=0.0, ge=0)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "mps") and not (value == "cuda" or value.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {value!r}")
        return value


@dataclass(frozen=True)
class TrainConfig:
    """Everything the train stage needs for one (dataset, model), resolved from all sections."""

    device: str
    batch_size: int
    loss: str
    optimizer: str
    lr: float
    lr_decay: str
    momentum: float
    weight_decay: float
    clip_norm: float | None
    mixed_precision: bool
    min_delta: float
    max_epochs: int
    patience: int
    train_stride: int
    max_train_samples: int | None
    max_eval_samples: int | None
    tasks: tuple[str, ...] | None


class Params(Strict):
    preset: str
    seeds: list[NonNegativeInt] = Field(min_length=1)
    regimes: list[Regime] = Field(default=["protocol"], min_length=1)
    jobs: Jobs
    data: DataSettings
    datasets: dict[str, SerializeAsAny[DatasetSettings]]
    presets: dict[str, Preset]
    training: TrainingDefaults
    models: dict[str, SerializeAsAny[ModelSettings]] = {}
    search_spaces: dict[str, dict[str, SearchDim]] = {}  # model -> settings key -> what a search tries

    @field_validator("search_spaces")
    @classmethod
    def _known_spaces(cls, value: dict[str, dict[str, SearchDim]]) -> dict[str, dict[str, SearchDim]]:
        for name, space in value.items():
            if name not in model_registry.REGISTRY:
                raise ValueError(f"search_spaces: {name!r} is not a registered model; known: "
                                 f"{', '.join(model_registry.REGISTRY)}")
            check_space(name, model_registry.REGISTRY[name].settings(), space)
        return value

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, value: Any) -> dict[str, DatasetSettings]:
        return _dataset_settings(value)

    @field_validator("models", mode="before")
    @classmethod
    def _model_settings(cls, value: Any) -> dict[str, ModelSettings]:
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of model name -> settings")
        out = {}
        for name, settings in value.items():
            if name not in model_registry.REGISTRY:
                hint = did_you_mean(name, model_registry.REGISTRY)
                raise ValueError(f"{name!r} is not a registered model{hint}; "
                                 f"known: {', '.join(model_registry.REGISTRY)}")
            settings_class = model_registry.REGISTRY[name].settings
            try:
                out[name] = settings_class.model_validate(settings or {})
            except ValidationError as error:
                raise ValueError("; ".join(_format(error, f"models.{name}", settings_class))) from None
        return out

    @model_validator(mode="after")
    def _consistent(self) -> "Params":
        if self.preset not in self.presets:
            hint = did_you_mean(self.preset, self.presets)
            raise ValueError(f"preset {self.preset!r} is not defined under presets{hint} ({', '.join(self.presets)})")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if len(set(self.regimes)) != len(self.regimes):
            raise ValueError(f"regimes must be distinct, got {self.regimes}")
        _check_jobs(self.jobs, self.datasets, "jobs")
        for preset_name, preset in self.presets.items():
            if preset.jobs is not None:
                _check_jobs(preset.jobs, self.datasets, f"presets.{preset_name}.jobs")
            for key, budget in preset.budgets.items():
                where = f"presets.{preset_name}.budgets.{key}"
                if key != "default" and key not in dataset_registry.DATASETS:
                    raise ValueError(f"{where}: {unknown('dataset', key, dataset_registry.DATASETS)}")
                chosen = {"": budget.tasks, **{f".models.{m}": b.tasks for m, b in budget.models.items()}}
                for suffix, tasks in chosen.items():
                    if tasks is None:
                        continue
                    if key == "default":
                        raise ValueError(f"{where}{suffix}.tasks: tasks are chosen per dataset, not in default")
                    known = dataset_registry.task_names(key, self.datasets[key])
                    names = [t for t in tasks if t not in known]
                    if names:
                        raise ValueError(f"{where}{suffix}.tasks: {unknown('tasks', names, known)}")
            for key in preset.tune:
                if key != "default" and key not in dataset_registry.DATASETS:
                    raise ValueError(f"presets.{preset_name}.tune: {unknown('dataset', key, dataset_registry.DATASETS)}")
        return self

    # --- resolved views ----------------------------------------------------------------------------
    def dataset(self, name: str) -> DatasetSettings:
        dataset_registry.get(name)
        return self.datasets[name]

    def model_settings(self, name: str) -> ModelSettings:
        entry = model_registry.get(name)
        return self.models.get(name) or entry.settings()

    def budget(self, dataset: str, model: str | None = None) -> Budget:
        """The preset's budget for a dataset (its `default`, then its own entry, then the model's cuts)."""
        preset = self.presets[self.preset]
        default, own = preset.budgets.get("default", Budget()), preset.budgets.get(dataset, Budget())
        merged = {**default.model_dump(exclude_none=True), **own.model_dump(exclude_none=True)}
        merged["models"] = {**default.models, **own.models}
        if model is not None and model in merged["models"]:
            merged.update(merged["models"][model].model_dump(exclude_none=True))
        return Budget(**merged)

    def train_config(self, dataset: str, model: str) -> TrainConfig:
        preset = self.presets[self.preset]
        budget = self.budget(dataset, model)
        protocol = self.dataset(dataset).training
        settings = self.model_settings(model)
        defaults = self.training
        return TrainConfig(
            device=defaults.device,
            batch_size=protocol.batch_size,
            loss=protocol.loss,
            optimizer=budget.optimizer or protocol.optimizer,
            lr=settings.lr or budget.lr or protocol.lr,
            lr_decay=budget.lr_decay or "none",
            momentum=(protocol.momentum if protocol.momentum is not None and budget.optimizer is None
                      else defaults.momentum),
            weight_decay=protocol.weight_decay if protocol.weight_decay is not None else defaults.weight_decay,
            clip_norm=defaults.clip_norm,
            mixed_precision=defaults.mixed_precision,
            min_delta=defaults.min_delta,
            max_epochs=settings.max_epochs or budget.max_epochs or preset.max_epochs,
            patience=budget.patience if budget.patience is not None else preset.patience,
            train_stride=budget.train_stride or 1,
            max_train_samples=budget.max_train_samples,
            max_eval_samples=budget.max_eval_samples,
            tasks=tuple(budget.tasks) if budget.tasks is not None else None,
        )

    def train_jobs(self) -> list[TrainJob]:
        """Every job the job lists define (dataset x model x seed x regime of each group), in a stable order.
        The tuned regime has a job only for models with a search space (a baseline has nothing to tune), on
        datasets the preset gives a search budget (`tune.<dataset>.trials: 0` leaves one out)."""
        return [
            TrainJob(group, dataset, model, seed, regime)
            for group in JOB_GROUPS
            for dataset in getattr(self.jobs, group).datasets
            for model in getattr(self.jobs, group).models
            for regime in self.regimes
            if regime == "protocol" or (model in self.search_spaces and self.tune_budget(dataset).trials != 0)
            for seed in self.seeds
        ]

    def tune_jobs(self) -> list[tuple[str, str]]:
        """(dataset, model) of every search the tuned jobs need, in a stable order."""
        return list(dict.fromkeys((j.dataset, j.model) for j in self.train_jobs() if j.regime == "tuned"))

    def tune_budget(self, dataset: str) -> TuneBudget:
        """The preset's search budget for a dataset (its `default`, then its own entry)."""
        budgets = self.presets[self.preset].tune
        merged = {**budgets.get("default", TuneBudget()).model_dump(exclude_none=True),
                  **budgets.get(dataset, TuneBudget()).model_dump(exclude_none=True)}
        return TuneBudget(**merged)

    def datasets_in_jobs(self) -> list[str]:
        names = [d for group in JOB_GROUPS for d in getattr(self.jobs, group).datasets]
        return list(dict.fromkeys(names))


def _check_jobs(jobs: Jobs, datasets: dict[str, DatasetSettings], where: str) -> None:
    """Every model of a group must fit every dataset of that group (DVC cannot skip matrix cells)."""
    for group in JOB_GROUPS:
        job_group: JobGroup = getattr(jobs, group)
        for name in job_group.datasets:
            if name not in dataset_registry.DATASETS:
                raise ValueError(f"{where}.{group}.datasets: {unknown('dataset', name, dataset_registry.DATASETS)}")
            family = dataset_registry.get(name).family
            # data stages run once per dataset, from the list of its family (statistical reuses forecast's)
            if group != "statistical" and family != group:
                raise ValueError(f"{where}.{group}: dataset {name!r} is a {family} dataset; "
                                 f"list it under {where}.{family}")
    extra = set(jobs.statistical.datasets) - set(jobs.forecast.datasets)
    if extra:
        raise ValueError(f"{where}.statistical: datasets {sorted(extra)} must also be in {where}.forecast "
                         "(their data stages run once, from the forecast list)")
    for group in JOB_GROUPS:
        job_group = getattr(jobs, group)
        for name in job_group.models:
            if name not in model_registry.REGISTRY:
                hint = did_you_mean(name, model_registry.REGISTRY)
                raise ValueError(f"{where}.{group}.models: {name!r} is not a registered model{hint}; "
                                 f"known: {', '.join(model_registry.REGISTRY)}")
        for dataset in job_group.datasets:
            info = dataset_registry.get(dataset)
            tasks = info.tasks(datasets[dataset]) if info.family == "forecast" else None
            for model in job_group.models:
                entry = model_registry.REGISTRY[model]
                if tasks is not None:
                    fits = any(entry.supports(task) for task in tasks)
                else:
                    fits = any(kind in entry.kinds for kind in FAMILY_KINDS[info.family])
                if not fits:
                    raise ValueError(
                        f"{where}.{group}: model {model!r} fits no task of dataset {dataset!r}; "
                        f"move it to a group whose datasets it supports ({', '.join(entry.kinds)})"
                    )
    pairs = [(d, m) for g in JOB_GROUPS for d in getattr(jobs, g).datasets for m in getattr(jobs, g).models]
    twice = sorted({pair for pair in pairs if pairs.count(pair) > 1})
    if twice:
        raise ValueError(f"{where}: {twice} appear in two groups (each job writes one run folder)")


def _format(error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[str]:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        key = ".".join(part for part in (prefix, loc) if part)
        message = item["msg"].removeprefix("Value error, ")
        got = "" if item["type"] in ("missing", "value_error") else f" (got {item.get('input')!r})"
        if item["type"] == "extra_forbidden" and item["loc"]:
            hint = did_you_mean(str(item["loc"][-1]), allowed_keys(model or Params, item["loc"]))
            got += f"; {hint.strip(' ()')}" if hint else ""
        # a nested validator's message already starts with the full key (models.<name>.<field>)
        nested = key and message.startswith(f"{key}.")
        lines.append(f"{key}: {message}{got}" if key and not nested else f"{message}{got}")
    return lines


def parse_params(data: Any, source: str = "params.yaml") -> Params:
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of settings at the top level")
    try:
        return Params.model_validate(data)
    except ValidationError as error:
        lines = "\n  ".join(_format(error))
        raise ParamsError(f"{source} is invalid:\n  {lines}") from None


def read_params_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: settings file not found (run from the project folder that holds params.yaml)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    return parse_params(read_params_yaml(Path(path)), source=str(path))
