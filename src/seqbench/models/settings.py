"""Typed settings of every architecture, with their defaults (torch-free: params validation imports this).

This is the one place a model's defaults live: they follow the books (Chollet, Deep Learning with
Python ch. 10-11; Geron, Hands-On ML ch. 15-16) and the papers; params.yaml `models.<name>` holds only
what a user changes. Unknown keys are rejected. `lr` and `max_epochs`, when set, override the dataset
protocol's learning rate and the preset's epoch budget for this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, confloat, field_validator

from seqbench.tasks import InstanceNorm

Probability = confloat(ge=0.0, lt=1.0)


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float | None = Field(default=None, gt=0)
    max_epochs: PositiveInt | None = None


class NoSettings(ModelSettings):
    pass


class ForecastInput(BaseModel):
    """Input handling any learned forecast model takes (seqbench.models.input_handling); None = the
    dataset protocol's choice (datasets.<name>.training), resolved by the configure stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_norm: InstanceNorm | None = None
    channel_independent: bool | None = None


class ForecastSettings(ModelSettings, ForecastInput):
    pass


class LinearSettings(ForecastSettings):
    pass


class LinearLSSettings(ForecastSettings):
    # ridge penalties tried, per training row of the normal equations; the one with the lowest validation
    # loss is kept (0: plain least squares)
    ridge: list[float] = Field(default=[0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], min_length=1)

    @field_validator("ridge")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(r < 0 for r in value):
            raise ValueError(f"ridge penalties must be >= 0, got {value}")
        return value


class DLinearSettings(ForecastSettings):
    kernel_size: PositiveInt = 25


class MLPSettings(ForecastSettings):
    hidden: list[PositiveInt] = [16]
    dropout: Probability = 0.0


class CNN1DSettings(ForecastSettings):
    filters: PositiveInt = 8
    kernel_sizes: list[PositiveInt] = [24, 12, 6]
    pool: PositiveInt = 2


class RecurrentSettings(ForecastSettings):
    units: PositiveInt = 32  # Geron's SimpleRNN(32), Chollet's GRU(32)


class LSTMSettings(RecurrentSettings):
    units: PositiveInt = 16  # Chollet: LSTM(16), Bidirectional(LSTM(16))


class DeepRecurrentSettings(ForecastSettings):
    units: PositiveInt = 32
    layers: int = Field(default=3, ge=2)
    dropout: Probability = 0.0


class StackedGRUSettings(DeepRecurrentSettings):
    layers: int = Field(default=2, ge=2)
    dropout: Probability = 0.5


class LSTMDropoutSettings(ForecastSettings):
    units: PositiveInt = 32
    recurrent_dropout: Probability = 0.25
    dropout: Probability = 0.5


class ConvGRUSettings(ForecastSettings):
    filters: PositiveInt = 32
    kernel_size: PositiveInt = 4
    stride: PositiveInt = 2
    units: PositiveInt = 32


class Seq2SeqSettings(ForecastSettings):
    units: PositiveInt = 32
    cell: Literal["rnn", "gru", "lstm"] = "rnn"


class ForecastTransformerSettings(ForecastInput):
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


def forecast_input(settings: ModelSettings) -> ForecastInput | None:
    """The part of a model's settings that holds its forecast input handling (None: the model takes none)."""
    if isinstance(settings, ForecastInput):
        return settings
    forecast = getattr(settings, "forecast", None)
    return forecast if isinstance(forecast, ForecastInput) else None


def with_forecast_input(settings: ModelSettings, **values) -> ModelSettings:
    """`settings` with these ForecastInput fields replaced (in `forecast` for the transformer)."""
    if isinstance(settings, ForecastInput):
        return settings.model_copy(update=values)
    return settings.model_copy(update={"forecast": settings.forecast.model_copy(update=values)})
