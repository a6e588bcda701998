"""Bag-of-words classifiers (Chollet ch. 11): Dense(16, relu) -> Dropout(0.5) -> Dense(1) on a
multi-hot (unigram, bigram) or TF-IDF (bigram) row. (B, V) float32 -> (B,) logits."""

from __future__ import annotations

from torch import Tensor, nn

from seqbench.models import settings as S
from seqbench.models.common import keras_init_
from seqbench.tasks import TextTask


class BowMLP(nn.Module):
    def __init__(self, width: int, settings: S.BowSettings):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, settings.hidden), nn.ReLU(), nn.Dropout(settings.dropout),
                                 nn.Linear(settings.hidden, 1))
        keras_init_(self)

    def forward(self, rows: Tensor) -> Tensor:
        return self.net(rows).squeeze(-1)


def build_bow_unigram(task: TextTask, settings: S.BowSettings) -> nn.Module:
    return BowMLP(task.vocab_size, settings)


def build_bow_bigram(task: TextTask, settings: S.BowSettings) -> nn.Module:
    return BowMLP(task.bigram_vocab_size, settings)


def build_bow_tfidf(task: TextTask, settings: S.BowSettings) -> nn.Module:
    return BowMLP(task.bigram_vocab_size, settings)
