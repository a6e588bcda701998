"""Dense forecasters: linear (Geron ch. 15), dlinear (Zeng et al. 2023), mlp (Chollet ch. 10)."""

from __future__ import annotations

from torch import Tensor, nn

from seqbench.models import settings as S
from seqbench.models.common import ForecastHead, keras_init_
from seqbench.tasks import ForecastTask


class Flat(nn.Module):
    """Flatten the window and map it through `body` to (B, H, F_out)."""

    def __init__(self, body: nn.Module, head: ForecastHead):
        super().__init__()
        self.body, self.head = body, head
        keras_init_(self)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in)
        return self.head(self.body(x.flatten(1)))


def build_linear(task: ForecastTask, settings: S.NoSettings) -> nn.Module:
    # Geron: Flatten + Dense(horizon); one weight per (input step, variable) and output.
    return Flat(nn.Identity(), ForecastHead(task.lookback * task.n_inputs, task))


def build_mlp(task: ForecastTask, settings: S.MLPSettings) -> nn.Module:
    # Chollet: Flatten, Dense(16, relu), Dense(1).
    layers: list[nn.Module] = []
    width = task.lookback * task.n_inputs
    for hidden in settings.hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(settings.dropout)]
        width = hidden
    return Flat(nn.Sequential(*layers), ForecastHead(width, task))


class MovingAverage(nn.Module):
    """Trend = centred moving average over time, the series edge-replicated to keep length T."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.front = (kernel_size - 1) // 2
        self.back = kernel_size - 1 - self.front
        self.pool = nn.AvgPool1d(kernel_size, stride=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        padded = nn.functional.pad(x, (self.front, self.back), mode="replicate")
        return self.pool(padded)


class DLinear(nn.Module):
    """Zeng et al. 2023 ("Are Transformers Effective for Time Series Forecasting?"), shared weights:
    x = trend + remainder; one Linear(lookback -> horizon) per component, applied to every input
    channel independently; the forecast is the sum, keeping the target channels."""

    def __init__(self, task: ForecastTask, kernel_size: int):
        super().__init__()
        self.decompose = MovingAverage(kernel_size)
        self.trend = nn.Linear(task.lookback, task.horizon)
        self.remainder = nn.Linear(task.lookback, task.horizon)
        self.targets = list(task.target_positions)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        x = x[..., self.targets].transpose(1, 2)  # (B, F_out, T): channels are independent
        trend = self.decompose(x)
        y = self.trend(trend) + self.remainder(x - trend)  # (B, F_out, H)
        return y.transpose(1, 2)


def build_dlinear(task: ForecastTask, settings: S.DLinearSettings) -> nn.Module:
    return DLinear(task, settings.kernel_size)
