"""Parameter-free forecasts (Chollet ch. 10 "common-sense baseline"; Geron ch. 15 naive lag-7).

Both read the target columns from the inputs (`task.target_positions`), so they are in the
same scaled units as every model's output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqbench.models.common import check_lookback
from seqbench.tasks import ForecastTask


class Naive(nn.Module):
    """The last observed value of each target, repeated over the horizon."""

    def __init__(self, task: ForecastTask):
        super().__init__()
        self.targets = list(task.target_positions)
        self.horizon = task.horizon

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        return x[:, -1:, self.targets].expand(-1, self.horizon, -1)


def seasonal_indices(task: ForecastTask) -> list[int]:
    """Input index holding the value one season before each horizon step's target.

    A window's last input is row `last`; horizon step j targets row last + delay + j. One season
    is season*sampling rows. The source is the latest row at a whole number of seasons before the
    target that is not after `last`: with delay 1 and sampling 1 that is T - season + (j mod season).
    When the target is not on the input grid (sampling > 1) the nearest earlier input step is used.
    """
    season_rows = task.season * task.sampling
    out = []
    for j in range(task.horizon):
        ahead = task.delay + j  # rows after the last input
        seasons_back = math.ceil(ahead / season_rows)
        offset = ahead - seasons_back * season_rows  # <= 0 rows from the last input
        out.append(task.lookback - 1 + math.floor(offset / task.sampling))
    return out


class SeasonalNaive(nn.Module):
    """For each horizon step, the target's value one season earlier (lag-`season` forecast)."""

    def __init__(self, task: ForecastTask):
        super().__init__()
        index = seasonal_indices(task)
        check_lookback("seasonal_naive", task, task.lookback - min(index), f"one season of {task.season} steps")
        self.register_buffer("index", torch.tensor(index), persistent=False)
        self.targets = list(task.target_positions)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        return x[:, self.index][..., self.targets]


def build_naive(task: ForecastTask, settings) -> nn.Module:
    return Naive(task)


def build_seasonal_naive(task: ForecastTask, settings) -> nn.Module:
    return SeasonalNaive(task)
