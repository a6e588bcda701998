"""Search spaces of the tuned regime (params.yaml `search_spaces.<model>`) and the budget of a search
(`presets.<preset>.tune`). Torch- and Optuna-free: params validation reads it.

A space maps a model's settings keys (dotted for nested ones: `forecast.d_model`; `lr` is the learning
rate of the dataset protocol's optimizer) to one dimension each:
  {int: [low, high], log: false}   an integer in [low, high]
  {float: [low, high], log: true}  a float in [low, high], sampled on a log scale if log
  {choice: [a, b, ...]}            one of the values (any YAML value: numbers, strings, lists)
Every key must be a setting of that model and every value one it accepts, checked when params.yaml loads.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, model_validator

from seqbench.models.settings import ModelSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchDim(Strict):
    int_: tuple[int, int] | None = Field(default=None, alias="int")
    float_: tuple[float, float] | None = Field(default=None, alias="float")
    choice: list[Any] | None = Field(default=None, min_length=1)
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> "SearchDim":
        kinds = [k for k, v in (("int", self.int_), ("float", self.float_), ("choice", self.choice)) if v is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of int, float or choice (got {kinds or 'none'})")
        bounds = self.int_ or self.float_
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"the low bound must be below the high one, got {list(bounds)}")
        if self.log and (bounds is None or bounds[0] <= 0):
            raise ValueError("log needs an int or float range above 0")
        return self

    def values_to_check(self) -> list[Any]:
        """The values whose validity decides the whole dimension (both bounds, or every choice)."""
        return list(self.int_ or self.float_ or self.choice)


class TuneBudget(Strict):
    """What one search may spend: the same for every architecture of a dataset (`default`, then the
    dataset's own entry). A trial trains on the training split and is scored on the validation split."""

    trials: NonNegativeInt | None = None  # finished trials (pruned ones count); 0: no tuned jobs for the dataset
    max_epochs: PositiveInt | None = None  # per task of a trial
    patience: NonNegativeInt | None = None
    train_stride: PositiveInt | None = None
    max_train_samples: PositiveInt | None = None
    max_eval_samples: PositiveInt | None = None
    tasks: list[str] | None = None  # the tasks whose mean validation loss scores a trial (None: the preset's)


def as_dict(space: dict[str, SearchDim]) -> dict[str, Any]:
    """A space as params.yaml writes it (what a tuned file records and is compared by)."""
    return {key: dim.model_dump(mode="json", by_alias=True, exclude_none=True) for key, dim in space.items()}


def with_values(settings: ModelSettings, values: dict[str, Any]) -> ModelSettings:
    """`settings` with dotted keys replaced, validated by the settings class."""
    data = settings.model_dump(mode="json")
    for key, value in values.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return type(settings).model_validate(data)


def check_space(model: str, settings: ModelSettings, space: dict[str, SearchDim]) -> None:
    """Every key a setting of the model, every bound or choice a value it accepts (ValueError naming them)."""
    fields = settings.model_dump(mode="json")
    for key, dim in space.items():
        node: Any = fields
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(_keys(fields))
                raise ValueError(f"search_spaces.{model}.{key}: {model} has no setting {key!r}; its settings are {known}")
            node = node[part]
        for value in dim.values_to_check():
            try:
                with_values(settings, {key: value})
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                raise ValueError(f"search_spaces.{model}.{key}: {json.dumps(value)} is not a value {model} accepts "
                                 f"({reason})") from None


def _keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        out += _keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return out
