"""Input handling any learned forecast model takes, put around the built model by the registry
(seqbench.models.ModelEntry.build), so no builder carries it.

instance_norm (RevIN, Kim et al., ICLR 2022): each input window is standardized per variable with its
own mean and standard deviation, taken over the input steps only (no target step is read), before the
model sees it; the forecast is mapped back with the same statistics. `revin_affine` adds RevIN's learned
per-variable scale and shift. An every-step model's forecasts (seq2seq) are mapped back at every step
with the window's statistics.
channel_independent (DLinear, PatchTST): the model reads one variable at a time, with its weights
shared by all variables, and forecasts each variable from its own past; the task's inputs and targets
must be the same variables.

Both pass a closed-form fit (linear_ls) through: the inner model accumulates its normal equations from
the transformed windows, so the fitted map is the one the forward pass applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor, nn

from seqbench.errors import TrainingError
from seqbench.tasks import ForecastTask

InstanceNormMode = str  # "none" | "revin" | "revin_affine"


class ChannelIndependent(nn.Module):
    """(B, T, F) -> the inner model on (B*F, T, 1) -> (B, [T,] H, F)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    @property
    def closed_form(self) -> bool:
        return getattr(self.inner, "closed_form", False)

    @staticmethod
    def split(x: Tensor) -> Tensor:
        batch, steps, variables = x.shape
        return x.transpose(1, 2).reshape(batch * variables, steps).unsqueeze(-1)  # (B*F, T, 1)

    @staticmethod
    def merge(out: Tensor, batch: int) -> Tensor:
        # (B*F, [T,] H, 1) -> (B, F, [T,] H) -> (B, [T,] H, F)
        return out.reshape(batch, -1, *out.shape[1:-1]).movedim(1, -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(self.inner(self.split(x)), x.shape[0])

    def closed_form_accumulate(self, x: Tensor, y: Tensor, scale: Tensor | None = None) -> None:  # y (B, H, F)
        self.inner.closed_form_accumulate(self.split(x), self.split(y), None if scale is None else self.split(scale))

    def closed_form_solve(self, ridge: float) -> None:
        self.inner.closed_form_solve(ridge)


class InstanceNorm(nn.Module):
    """RevIN around `inner`: inputs (B, T, F_in) standardized per window and variable, the forecast
    (B, [T,] H, F_out) mapped back with the statistics of its target variables."""

    def __init__(self, inner: nn.Module, task: ForecastTask, affine: bool, eps: float = 1e-5):
        super().__init__()
        self.inner, self.eps = inner, eps
        self.register_buffer("targets", torch.tensor(task.target_positions), persistent=False)
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(task.n_inputs))
            self.bias = nn.Parameter(torch.zeros(task.n_inputs))

    @property
    def closed_form(self) -> bool:
        return getattr(self.inner, "closed_form", False)

    def statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, std), each (B, 1, F_in), over the input steps; not differentiated through (as RevIN)."""
        mean = x.mean(1, keepdim=True).detach()
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + self.eps).detach()
        return mean, std

    def normalize(self, x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        z = (x - mean) / std
        return z * self.weight + self.bias if self.affine else z

    def _target_stats(self, stat: Tensor, ndim: int) -> Tensor:
        # (B, 1, F_in) -> (B, 1, ..., 1, F_out) broadcasting over (B, [T,] H, F_out)
        picked = stat.index_select(-1, self.targets)
        return picked.reshape(picked.shape[0], *([1] * (ndim - 2)), picked.shape[-1])

    def forward(self, x: Tensor) -> Tensor:
        mean, std = self.statistics(x)
        out = self.inner(self.normalize(x, mean, std))
        if self.affine:
            weight, bias = self.weight[self.targets], self.bias[self.targets]
            out = (out - bias) / (weight + self.eps * self.eps)
        return out * self._target_stats(std, out.ndim) + self._target_stats(mean, out.ndim)

    def closed_form_accumulate(self, x: Tensor, y: Tensor) -> None:  # y (B, H, F_out)
        if self.affine:
            raise TrainingError("instance_norm revin_affine has learned parameters: a closed-form fit cannot "
                                "use it; choose instance_norm none or revin")
        mean, std = self.statistics(x)
        target_std = self._target_stats(std, y.ndim)  # (B, 1, F_out)
        z_y = (y - self._target_stats(mean, y.ndim)) / target_std
        # The forecast is std * (inner output) + mean, so its squared error is std^2 times the error in the
        # normalized space: each row weighs by its window's std, and the fit minimizes the de-normalized
        # MSE, the loss the learned models train on (unweighted, a nearly flat window's huge z_y dominates).
        self.inner.closed_form_accumulate(self.normalize(x, mean, std), z_y, target_std)

    def closed_form_solve(self, ridge: float) -> None:
        self.inner.closed_form_solve(ridge)


def univariate(task: ForecastTask) -> ForecastTask:
    """The task a channel-independent model's inner network sees: one variable in, the same one out."""
    return dataclasses.replace(task, inputs=task.inputs[:1], targets=task.inputs[:1])


def wrap(build: Callable[[ForecastTask], nn.Module], task: ForecastTask, model: str, instance_norm: str,
         channel_independent: bool) -> nn.Module:
    """The model `build` makes for the task (or for one variable of it), with the input handling asked for."""
    if channel_independent:
        if task.inputs != task.targets:
            raise TrainingError(
                f"model {model}: channel_independent needs a task whose inputs and targets are the same variables, "
                f"but task {task.name!r} reads {list(task.inputs)} and forecasts {list(task.targets)}; set "
                f"channel_independent: false for this dataset (datasets.<name>.training or models.{model})")
        net = ChannelIndependent(build(univariate(task)))
    else:
        net = build(task)
    if instance_norm != "none":
        net = InstanceNorm(net, task, affine=instance_norm == "revin_affine")
    return net
