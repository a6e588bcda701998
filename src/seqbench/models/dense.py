"""Dense forecasters: linear (Geron ch. 15), linear_ls (Zeng et al.'s Linear, fitted in closed form),
dlinear (Zeng et al. 2023), mlp (Chollet ch. 10)."""

from __future__ import annotations

import torch
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


class LinearLS(nn.Module):
    """One linear map lookback -> horizon (plus a bias), shared by the target variables, each forecast from
    its own past (Zeng et al.'s Linear), fitted by least squares instead of gradient steps.

    The training loop streams the training windows through `closed_form_accumulate` (the normal equations,
    in float64), then calls `closed_form_solve(ridge)` for each of the settings' ridge penalties and keeps
    the one with the lowest validation loss. The fitted map is a buffer: it is saved with the weights but
    no optimizer touches it."""

    closed_form = True

    def __init__(self, task: ForecastTask):
        super().__init__()
        self.targets = list(task.target_positions)
        self.register_buffer("weight", torch.zeros(task.horizon, task.lookback))  # (H, T)
        self.register_buffer("bias", torch.zeros(task.horizon))
        self._xtx: Tensor | None = None  # (T + 1, T + 1): inputs with a column of ones for the bias
        self._xty: Tensor | None = None  # (T + 1, H)
        self._rows = 0.0  # the rows' summed squared weights (their count when unweighted): the ridge's unit

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        series = x[..., self.targets].transpose(1, 2)  # (B, F_out, T)
        return (series @ self.weight.T + self.bias).transpose(1, 2)

    def closed_form_accumulate(self, x: Tensor, y: Tensor, scale: Tensor | None = None) -> None:
        """x (B, T, F_in), y (B, H, F_out); scale (B, 1, F_out), optional: each row's weight in the squared
        error (the instance normalization's std), applied to the row and its targets alike."""
        rows = x[..., self.targets].transpose(1, 2).reshape(-1, x.shape[1]).double()  # (B*F_out, T)
        rows = torch.cat([rows, torch.ones_like(rows[:, :1])], 1)  # (B*F_out, T + 1)
        targets = y.transpose(1, 2).reshape(-1, y.shape[1]).double()  # (B*F_out, H)
        if scale is not None:
            weight = scale.transpose(1, 2).reshape(-1, 1).double()  # (B*F_out, 1)
            rows, targets = rows * weight, targets * weight
        if self._xtx is None:
            self._xtx, self._xty = rows.new_zeros(rows.shape[1], rows.shape[1]), rows.new_zeros(rows.shape[1], targets.shape[1])
        self._xtx += rows.T @ rows
        self._xty += rows.T @ targets
        self._rows += rows.shape[0] if scale is None else float(weight.square().sum())

    def closed_form_solve(self, ridge: float) -> None:
        """Least squares with `ridge` x (summed row weights) on the diagonal (the bias is not penalized).

        Without a ridge the normal equations are singular under instance normalization: every normalized window
        sums to zero, so adding one constant to a row of the map changes no forecast. A solver that decides the
        rank from rounding noise then returns a different map on each machine (and CUDA's lstsq assumes full
        rank), so the minimum-norm solution is taken explicitly, on the CPU: a pseudo-inverse that drops the
        directions whose eigenvalue is below 1e-10 of the largest."""
        gram, moments = self._xtx.cpu(), self._xty.cpu()
        penalty = torch.eye(gram.shape[0], dtype=gram.dtype) * ridge * self._rows
        penalty[-1, -1] = 0.0
        solution = torch.linalg.pinv(gram + penalty, rtol=1e-10, hermitian=True) @ moments  # (T + 1, H)
        self.weight.copy_(solution[:-1].T.to(self.weight))
        self.bias.copy_(solution[-1].to(self.bias))


def build_linear_ls(task: ForecastTask, settings: S.LinearLSSettings) -> nn.Module:
    return LinearLS(task)


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
