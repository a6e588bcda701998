"""Model registry: every name usable in params.yaml -> how to build it and what it can do.

Torch-free at import (params validation reads it); builders are imported on first use.

Builder contract: `build(task, settings) -> torch.nn.Module`, where `task` is a seqbench.tasks
spec and `settings` the model's validated settings object. Shapes (all batch-first):
  forecast  x (B, T, F_in) float, scaled  -> (B, H, F_out), scaled
            every_step models (seq2seq)   -> (B, T, H, F_out): the forecast made at every input step
  text      x (B, L) int64 ids, or (B, V) float for bag-of-words inputs -> (B,) logits
  chars     x (B, T) int64 ids -> (B, T, V) logits
A module without parameters (naive, seasonal_naive, sarima) is evaluated without training.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from seqbench.models import settings as S
from seqbench.tasks import FAMILY_KINDS, Task

FORECAST = FAMILY_KINDS["forecast"]
TextInput = Literal["sequence", "bow_unigram", "bow_bigram", "bow_tfidf"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builders: dict[str, str]  # family -> "module:function"
    kinds: tuple[str, ...]
    settings: type[S.ModelSettings] = S.NoSettings
    univariate_only: bool = False  # needs inputs == targets == one series (SARIMA)
    every_step: bool = False  # trained on a forecast at every input step (seq2seq)
    text_input: TextInput = "sequence"
    masks_padding: bool = False  # output independent of trailing padding: batches are cut to their longest text
    length_multiple: int = 1  # ...rounded up to a multiple of this many tokens, so batch shapes recur

    def supports(self, task: Task) -> bool:
        if task.kind not in self.kinds:
            return False
        return not (self.univariate_only and not getattr(task, "univariate", False))

    def modules(self) -> list[str]:
        """The modules holding this model's builders (its code, for the stage graph)."""
        return list(dict.fromkeys(target.split(":")[0] for target in self.builders.values()))

    def build(self, task: Task, settings: S.ModelSettings):
        """The model for a task; a learned forecast model comes inside the input handling its settings
        ask for (instance normalization, channel independence: seqbench.models.input_handling)."""
        if not self.supports(task):
            raise ValueError(f"model {self.name!r} does not support task {task.name!r} ({task.kind})")
        module_name, function = self.builders[task.family].split(":")
        builder = getattr(importlib.import_module(module_name), function)
        handling = S.forecast_input(settings) if task.family == "forecast" else None
        if handling is None:
            return builder(task, settings)
        from seqbench.models.input_handling import wrap

        return wrap(lambda t: builder(t, settings), task, self.name, handling.instance_norm or "none",
                    bool(handling.channel_independent))


def _forecast(name: str, module: str, settings=S.NoSettings, **kw) -> ModelEntry:
    return ModelEntry(name, {"forecast": f"seqbench.models.{module}:build_{name}"}, FORECAST, settings, **kw)


def _text(name: str, module: str, settings, **kw) -> ModelEntry:
    return ModelEntry(name, {"text": f"seqbench.models.{module}:build_{name}"}, ("text_binary",), settings, **kw)


def _chars(name: str, module: str, settings) -> ModelEntry:
    return ModelEntry(name, {"chars": f"seqbench.models.{module}:build_{name}"}, ("next_char",), settings)


REGISTRY: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        _forecast("naive", "baselines"),
        _forecast("seasonal_naive", "baselines"),
        _forecast("linear", "dense", S.LinearSettings),
        _forecast("linear_ls", "dense", S.LinearLSSettings),
        _forecast("dlinear", "dense", S.DLinearSettings),
        _forecast("mlp", "dense", S.MLPSettings),
        _forecast("cnn1d", "conv", S.CNN1DSettings),
        _forecast("rnn", "recurrent", S.RecurrentSettings),
        _forecast("deep_rnn", "recurrent", S.DeepRecurrentSettings),
        _forecast("lstm", "recurrent", S.LSTMSettings),
        _forecast("lstm_dropout", "recurrent", S.LSTMDropoutSettings),
        _forecast("gru", "recurrent", S.RecurrentSettings),
        _forecast("stacked_gru", "recurrent", S.StackedGRUSettings),
        _forecast("bilstm", "recurrent", S.LSTMSettings),
        _forecast("conv_gru", "recurrent", S.ConvGRUSettings),
        _forecast("seq2seq", "recurrent", S.Seq2SeqSettings, every_step=True),
        _forecast("sarima", "statistical", S.SarimaSettings, univariate_only=True),
        ModelEntry(
            "transformer",
            {
                "forecast": "seqbench.models.transformer:build_forecast_transformer",
                "text": "seqbench.models.transformer:build_text_transformer",
            },
            (*FORECAST, "text_binary"),
            S.TransformerSettings,
            masks_padding=True,
        ),
        _text("bow_unigram", "bow", S.BowSettings, text_input="bow_unigram"),
        _text("bow_bigram", "bow", S.BowSettings, text_input="bow_bigram"),
        _text("bow_tfidf", "bow", S.BowSettings, text_input="bow_tfidf"),
        _text("bilstm_onehot", "recurrent", S.BiLSTMOneHotSettings),
        # oneDNN's LSTM sizes its workspace by the batch's length: with every length from 1 to 600 the
        # heap fragmented (4.2 GB peak per job, glibc keeps freed memory, seqbench.device) and each new
        # length built a new oneDNN primitive; in multiples of 64 the shapes recur (1.5 GB; 11% faster in a
        # 2-epoch A/B, but 1.075x per epoch against 0.95x for unchanged models in the full run of 2cae42d)
        _text("bilstm_embedding", "recurrent", S.BiLSTMEmbeddingSettings, masks_padding=True, length_multiple=64),
        _text("textcnn", "conv", S.TextCNNSettings, masks_padding=True),
        _chars("char_gru", "recurrent", S.CharRNNSettings),
        _chars("char_lstm", "recurrent", S.CharRNNSettings),
        _chars("char_transformer", "transformer", S.CharTransformerSettings),
    )
}


def get(name: str) -> ModelEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}") from None
