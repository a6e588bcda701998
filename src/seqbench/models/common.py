"""Pieces shared by the model families: output heads, the books' (Keras) initialization, and
build-time checks (a model that cannot be built for a task raises TrainingError naming the setting
or task field to change)."""

from __future__ import annotations

import torch
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


@torch.no_grad()
def keras_init_(module: nn.Module) -> nn.Module:
    """Keras' default initialization, which the books' results were obtained with: embeddings
    U(-0.05, 0.05), dense/conv kernels Glorot-uniform, recurrent kernels orthogonal, zero biases, LSTM
    forget-gate bias 1 (`unit_forget_bias`). PyTorch's N(0, 1) embeddings made the IMDB BiLSTM learn
    several times slower under the book's RMSprop(1e-3). Frozen parameters are left alone."""
    for layer in module.modules():
        if isinstance(layer, nn.Embedding):
            nn.init.uniform_(layer.weight, -0.05, 0.05)
            if layer.padding_idx is not None:
                layer.weight[layer.padding_idx].zero_()
        elif isinstance(layer, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.LSTM, nn.GRU, nn.RNN)):
            for name, param in layer.named_parameters():
                if not param.requires_grad:
                    continue
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)  # (gates*U, U): Keras' (U, gates*U) recurrent kernel
                else:
                    nn.init.zeros_(param)
                    if isinstance(layer, nn.LSTM) and name.startswith("bias_ih"):
                        param[layer.hidden_size:2 * layer.hidden_size] = 1.0  # gate order i, f, g, o
    return module


def lengths_of(ids: Tensor) -> Tensor:
    """Real length of each post-padded row (id 0 = padding): last non-zero position + 1, at least 1."""
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    return ((ids != 0) * positions).amax(1).clamp(min=1)
