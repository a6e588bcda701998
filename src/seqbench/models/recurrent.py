"""Recurrent models: every forecaster of Chollet ch. 10 / Geron ch. 15, and the builders of the text
(Chollet ch. 11) and character (Geron ch. 16) RNNs, whose modules live in `text_recurrent`.

`cells.LSTM`, `cells.GRU` and `cells.RNN` (nn.LSTM, nn.GRU and nn.RNN with the same parameters and
numbers that train on CPU through hand-written recurrences); lstm_dropout trains through
`cells.masked_lstm`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqbench.models import settings as S
from seqbench.models.cells import GRU, LSTM, RNN, masked_lstm
from seqbench.models.common import ForecastHead, check_lookback, keras_init_
from seqbench.models.text_recurrent import CharRNN, EmbeddingBiLSTM, OneHotBiLSTM
from seqbench.tasks import CharTask, ForecastTask, TextTask

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": RNN, "gru": GRU, "lstm": LSTM}


def last_output(out: Tensor, state: Tensor | tuple[Tensor, Tensor], bidirectional: bool) -> Tensor:
    """What Keras returns without return_sequences, from an nn.RNNBase's (out (B, T, U or 2U), state):
    (B, U or 2U). One direction: the last layer's final state (= out[:, -1]; reading it instead of a
    slice of out, the layers here need no zero-filled (B, T, U) gradient for the other steps).
    Bidirectional: the forward direction's last step next to the backward one's first (where the
    backward pass ends)."""
    if not bidirectional:
        h_n = state[0] if isinstance(state, tuple) else state  # (layers, B, U); an LSTM's is (h_n, c_n)
        return h_n[-1]
    units = out.shape[-1] // 2
    return torch.cat([out[:, -1, :units], out[:, 0, units:]], -1)


class RecurrentForecaster(nn.Module):
    """[Conv1D] -> recurrent layer(s) -> [Dropout] -> Dense on the last step -> (B, H, F_out)."""

    def __init__(self, rnn: nn.RNNBase, task: ForecastTask, dropout: float = 0.0, conv: nn.Module | None = None):
        super().__init__()
        self.conv = conv
        self.rnn = rnn
        self.dropout = nn.Dropout(dropout)
        width = rnn.hidden_size * (2 if rnn.bidirectional else 1)
        self.head = ForecastHead(width, task)
        keras_init_(self)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in)
        if self.conv is not None:
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T', filters)
        out, state = self.rnn(x)  # (B, T, U)
        return self.head(self.dropout(last_output(out, state, self.rnn.bidirectional)))


def _rnn(cell: str, task: ForecastTask, units: int, **kw) -> nn.RNNBase:
    return CELLS[cell](task.n_inputs, units, batch_first=True, **kw)


def build_rnn(task: ForecastTask, settings: S.RecurrentSettings) -> nn.Module:
    # Geron: SimpleRNN(32) (tanh) + Dense.
    return RecurrentForecaster(_rnn("rnn", task, settings.units), task)


def build_deep_rnn(task: ForecastTask, settings: S.DeepRecurrentSettings) -> nn.Module:
    # Geron: three stacked SimpleRNN(32), the last one's final output into a Dense.
    return RecurrentForecaster(
        _rnn("rnn", task, settings.units, num_layers=settings.layers, dropout=settings.dropout), task)


def build_lstm(task: ForecastTask, settings: S.RecurrentSettings) -> nn.Module:
    # Chollet: LSTM(16) + Dense(1).
    return RecurrentForecaster(_rnn("lstm", task, settings.units), task)


def build_gru(task: ForecastTask, settings: S.RecurrentSettings) -> nn.Module:
    return RecurrentForecaster(_rnn("gru", task, settings.units), task)


def build_stacked_gru(task: ForecastTask, settings: S.StackedGRUSettings) -> nn.Module:
    # Chollet: stacked GRU(32) layers with dropout between them.
    return RecurrentForecaster(
        _rnn("gru", task, settings.units, num_layers=settings.layers, dropout=settings.dropout), task)


def build_bilstm(task: ForecastTask, settings: S.RecurrentSettings) -> nn.Module:
    # Chollet: Bidirectional(LSTM(16)) + Dense(1).
    return RecurrentForecaster(_rnn("lstm", task, settings.units, bidirectional=True), task)


def build_conv_gru(task: ForecastTask, settings: S.ConvGRUSettings) -> nn.Module:
    # Geron: Conv1D(32, kernel 4, strides 2, relu) halves the steps the GRU(32) has to run.
    check_lookback("conv_gru", task, settings.kernel_size, f"conv kernel_size {settings.kernel_size}")
    conv = nn.Sequential(
        nn.Conv1d(task.n_inputs, settings.filters, settings.kernel_size, stride=settings.stride), nn.ReLU())
    gru = GRU(settings.filters, settings.units, batch_first=True)
    return RecurrentForecaster(gru, task, conv=conv)


class LSTMDropout(nn.Module):
    """Chollet: LSTM(32, recurrent_dropout=0.25) + Dropout(0.5) + Dense(1).

    Recurrent dropout as in Gal & Ghahramani / Keras: in training, ONE mask per sequence (B, units),
    drawn at every forward and applied to h before every recurrent matmul. In eval there is no mask
    and the same weights run through the fused nn.LSTM."""

    def __init__(self, task: ForecastTask, settings: S.LSTMDropoutSettings):
        super().__init__()
        self.recurrent_dropout = settings.recurrent_dropout
        self.lstm = nn.LSTM(task.n_inputs, settings.units, batch_first=True)
        self.dropout = nn.Dropout(settings.dropout)
        self.head = ForecastHead(settings.units, task)
        keras_init_(self)

    def recurrent_mask(self, batch: int, like: Tensor) -> Tensor:
        keep = 1.0 - self.recurrent_dropout
        return like.new_empty(batch, self.lstm.hidden_size).bernoulli_(keep).div_(keep)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        if self.training and self.recurrent_dropout > 0:
            lstm = self.lstm
            mask = self.recurrent_mask(x.shape[0], x)
            _, last = masked_lstm(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0, mask)
        else:
            out, state = self.lstm(x)
            last = last_output(out, state, bidirectional=False)
        return self.head(self.dropout(last))


def build_lstm_dropout(task: ForecastTask, settings: S.LSTMDropoutSettings) -> nn.Module:
    return LSTMDropout(task, settings)


class Seq2Seq(nn.Module):
    """Geron ch. 15: an RNN returning sequences and a Dense to every (horizon, target) at every step,
    (B, T, F_in) -> (B, T, H, F_out); the loss covers all steps, the forecast is [:, -1]."""

    def __init__(self, task: ForecastTask, settings: S.Seq2SeqSettings):
        super().__init__()
        self.rnn = _rnn(settings.cell, task, settings.units)
        self.head = ForecastHead(settings.units, task)
        keras_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)  # (B, T, U)
        return self.head(out)


def build_seq2seq(task: ForecastTask, settings: S.Seq2SeqSettings) -> nn.Module:
    return Seq2Seq(task, settings)


def build_bilstm_onehot(task: TextTask, settings: S.BiLSTMOneHotSettings) -> nn.Module:
    return OneHotBiLSTM(task.vocab_size, settings.units, settings.dropout)


def build_bilstm_embedding(task: TextTask, settings: S.BiLSTMEmbeddingSettings) -> nn.Module:
    return EmbeddingBiLSTM(task.vocab_size, settings.embed_dim, settings.units, settings.dropout)


def build_char_gru(task: CharTask, settings: S.CharRNNSettings) -> nn.Module:
    return CharRNN(GRU, task.vocab_size, settings.embed_dim, settings.units)


def build_char_lstm(task: CharTask, settings: S.CharRNNSettings) -> nn.Module:
    return CharRNN(LSTM, task.vocab_size, settings.embed_dim, settings.units)
