"""Convolutional models: cnn1d (Chollet ch. 10) for forecasts, textcnn (Kim 2014) for text."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqbench.models import settings as S
from seqbench.models.common import ForecastHead, keras_init_, lengths_of
from seqbench.tasks import ForecastTask, TextTask


def conv_plan(length: int, kernel_sizes: list[int], pool: int) -> list[tuple[int, bool]]:
    """(kernel, pool after?) per conv layer for an input of `length` steps, 'valid' padding as in
    Keras. A kernel longer than what is left is clamped to it, and a pooling that would leave less
    than one step is dropped, so short lookbacks still build (e.g. CTA's 56 days)."""
    plan = []
    for layer, kernel in enumerate(kernel_sizes):
        kernel = min(kernel, length)
        length = length - kernel + 1
        pooled = layer < len(kernel_sizes) - 1 and length >= pool
        if pooled:
            length //= pool
        plan.append((kernel, pooled))
    return plan


class CNN1D(nn.Module):
    """Chollet: Conv1D(8, 24, relu), MaxPool(2), Conv1D(8, 12, relu), MaxPool(2), Conv1D(8, 6, relu),
    GlobalAveragePooling1D, Dense."""

    def __init__(self, task: ForecastTask, settings: S.CNN1DSettings):
        super().__init__()
        layers: list[nn.Module] = []
        channels = task.n_inputs
        for kernel, pooled in conv_plan(task.lookback, settings.kernel_sizes, settings.pool):
            layers += [nn.Conv1d(channels, settings.filters, kernel), nn.ReLU()]
            if pooled:
                layers.append(nn.MaxPool1d(settings.pool))
            channels = settings.filters
        self.features = nn.Sequential(*layers)
        self.head = ForecastHead(settings.filters, task)
        keras_init_(self)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        z = self.features(x.transpose(1, 2))  # (B, filters, T')
        return self.head(z.mean(-1))


def build_cnn1d(task: ForecastTask, settings: S.CNN1DSettings) -> nn.Module:
    return CNN1D(task, settings)


class TextCNN(nn.Module):
    """Kim 2014: embedding, parallel Conv1d per kernel size, ReLU, max over time, dropout, Dense.

    The max runs over the positions whose window starts on a real token (a document shorter than a
    kernel keeps its first position), so trailing padding never changes the output: batches may be
    cut to their longest document."""

    def __init__(self, task: TextTask, settings: S.TextCNNSettings):
        super().__init__()
        self.embedding = nn.Embedding(task.vocab_size, settings.embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(settings.embed_dim, settings.filters, k) for k in settings.kernel_sizes)
        self.min_length = max(settings.kernel_sizes)
        self.dropout = nn.Dropout(settings.dropout)
        self.dense = nn.Linear(settings.filters * len(settings.kernel_sizes), 1)
        keras_init_(self)

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) -> (B,)
        lengths = lengths_of(ids)  # (B,)
        if ids.shape[1] < self.min_length:  # shorter than the widest kernel: pad with id 0
            ids = nn.functional.pad(ids, (0, self.min_length - ids.shape[1]))
        e = self.embedding(ids).transpose(1, 2)  # (B, E, L)
        pooled = []
        for conv in self.convs:
            out = torch.relu(conv(e))  # (B, filters, L - k + 1)
            starts = torch.arange(out.shape[-1], device=ids.device)
            real = (starts[None, :] <= (lengths[:, None] - conv.kernel_size[0]).clamp(min=0))  # (B, L - k + 1)
            pooled.append(out.masked_fill(~real[:, None, :], float("-inf")).amax(-1))  # (B, filters)
        return self.dense(self.dropout(torch.cat(pooled, 1))).squeeze(-1)


def build_textcnn(task: TextTask, settings: S.TextCNNSettings) -> nn.Module:
    return TextCNN(task, settings)
