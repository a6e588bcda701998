"""Typed settings of every architecture (torch-free: params validation imports this).

Defaults follow the books (Chollet, Deep Learning with Python ch. 10-11; Geron, Hands-On ML ch. 15-16);
params.yaml `models.<name>` overrides them. Unknown keys are rejected. `lr` and `max_epochs`, when
set, override the dataset protocol's learning rate and the preset's epoch budget for this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, confloat

Probability = confloat(ge=0.0, lt=1.0)


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float | None = Field(default=None, gt=0)
    max_epochs: PositiveInt | None = None


class NoSettings(ModelSettings):
    pass


class DLinearSettings(ModelSettings):
    kernel_size: PositiveInt = 25


class MLPSettings(ModelSettings):
    hidden: list[PositiveInt] = [16]
    dropout: Probability = 0.0


class CNN1DSettings(ModelSettings):
    filters: PositiveInt = 8
    kernel_sizes: list[PositiveInt] = [24, 12, 6]
    pool: PositiveInt = 2


class RecurrentSettings(ModelSettings):
    units: PositiveInt = 32


class DeepRecurrentSettings(ModelSettings):
    units: PositiveInt = 32
    layers: int = Field(default=3, ge=2)
    dropout: Probability = 0.0


class StackedGRUSettings(DeepRecurrentSettings):
    layers: int = Field(default=2, ge=2)
    dropout: Probability = 0.5


class LSTMDropoutSettings(ModelSettings):
    units: PositiveInt = 32
    recurrent_dropout: Probability = 0.25
    dropout: Probability = 0.5


class ConvGRUSettings(ModelSettings):
    filters: PositiveInt = 32
    kernel_size: PositiveInt = 4
    stride: PositiveInt = 2
    units: PositiveInt = 32


class Seq2SeqSettings(ModelSettings):
    units: PositiveInt = 32
    cell: Literal["rnn", "gru", "lstm"] = "rnn"


class ForecastTransformerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    patch_len: PositiveInt = 8  # steps per token (PatchTST); 1 = one token per step (T^2 attention)
    d_model: PositiveInt = 32
    heads: PositiveInt = 4
    layers: PositiveInt = 2
    ff: PositiveInt = 64
    dropout: Probability = 0.1


class TextTransformerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    embed_dim: PositiveInt = 256
    heads: PositiveInt = 2
    ff: PositiveInt = 32
    dropout: Probability = 0.5


class TransformerSettings(ModelSettings):
    forecast: ForecastTransformerSettings = ForecastTransformerSettings()
    text: TextTransformerSettings = TextTransformerSettings()


class SarimaSettings(ModelSettings):
    order: tuple[int, int, int] = (1, 0, 0)
    seasonal_order: tuple[int, int, int] = (0, 1, 1)  # (P, D, Q); the period is the dataset's season


class BowSettings(ModelSettings):
    hidden: PositiveInt = 16
    dropout: Probability = 0.5


class BiLSTMOneHotSettings(ModelSettings):
    units: PositiveInt = 32
    dropout: Probability = 0.5


class BiLSTMEmbeddingSettings(ModelSettings):
    embed_dim: PositiveInt = 256
    units: PositiveInt = 32
    dropout: Probability = 0.5


class TextCNNSettings(ModelSettings):
    embed_dim: PositiveInt = 128
    filters: PositiveInt = 100
    kernel_sizes: list[PositiveInt] = [3, 4, 5]
    dropout: Probability = 0.5


class CharRNNSettings(ModelSettings):
    embed_dim: PositiveInt = 16
    units: PositiveInt = 128


class CharTransformerSettings(ModelSettings):
    d_model: PositiveInt = 128
    heads: PositiveInt = 4
    layers: PositiveInt = 2
    ff: PositiveInt = 512
    dropout: Probability = 0.1
