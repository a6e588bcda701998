"""Pieces shared by the model families: output heads and build-time checks (a model that cannot
be built for a task raises TrainingError naming the setting or task field to change)."""

from __future__ import annotations

from torch import Tensor, nn

from seqbench.errors import TrainingError
from seqbench.tasks import ForecastTask


class ForecastHead(nn.Module):
    """Dense layer to every (horizon step, target): (..., in) -> (..., H, F_out)."""

    def __init__(self, in_features: int, task: ForecastTask):
        super().__init__()
        self.horizon, self.n_targets = task.horizon, task.n_targets
        self.dense = nn.Linear(in_features, task.horizon * task.n_targets)

    def forward(self, z: Tensor) -> Tensor:
        return self.dense(z).unflatten(-1, (self.horizon, self.n_targets))


class LastStep(nn.Module):
    """Keep a recurrent layer's output at the last step: (B, T, U) -> (B, U)."""

    def forward(self, z: Tensor) -> Tensor:
        return z[:, -1]


def check_divisible(model: str, field: str, value: int, by_field: str, by: int) -> None:
    if value % by:
        raise TrainingError(
            f"model {model}: settings {field}={value} must be divisible by {by_field}={by}; "
            f"change models.{model} in params.yaml")


def check_lookback(model: str, task: ForecastTask, needed: int, why: str) -> None:
    if task.lookback < needed:
        raise TrainingError(
            f"model {model} needs a lookback of at least {needed} input steps ({why}) but task "
            f"{task.name!r} has lookback {task.lookback}; raise the dataset's lookback or drop the model")
