"""Recurrent text classifiers (Chollet ch. 11) and character language models (Geron ch. 16).
Builders are in `recurrent` (the registry's paths)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


class OneHotBiLSTM(nn.Module):
    """Chollet: one-hot tokens -> Bidirectional(LSTM(32)) -> Dropout(0.5) -> Dense(1).

    Exact but cheap: one_hot(v) @ W_ih^T is column v of W_ih, so `input_weights` (V, 8U) holds the
    input weights of both directions as rows [forward 4U | backward 4U] and the LSTM's own input
    weights are fixed selectors ([I 0] forward, [0 I] backward, requires_grad=False). No (B, L, V)
    one-hot is ever built. No masking, as in the book: padding id 0 is a token like any other.
    """

    def __init__(self, vocab_size: int, units: int, dropout: float):
        super().__init__()
        gates = 4 * units
        self.input_weights = nn.Embedding(vocab_size, 2 * gates)
        # Same init as nn.LSTM(vocab_size, units) gives its W_ih.
        nn.init.uniform_(self.input_weights.weight, -1 / math.sqrt(units), 1 / math.sqrt(units))
        self.lstm = nn.LSTM(2 * gates, units, batch_first=True, bidirectional=True)
        eye = torch.eye(gates)
        zero = torch.zeros(gates, gates)
        for name, value in (("weight_ih_l0", torch.cat([eye, zero], 1)),
                            ("weight_ih_l0_reverse", torch.cat([zero, eye], 1))):
            getattr(self.lstm, name).data.copy_(value)
            getattr(self.lstm, name).requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * units, 1)

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) int64 -> (B,)
        out, _ = self.lstm(self.input_weights(ids))  # (B, L, 2U)
        units = self.lstm.hidden_size
        last = torch.cat([out[:, -1, :units], out[:, 0, units:]], -1)  # forward end, backward end
        return self.dense(self.dropout(last)).squeeze(-1)


def lengths_of(ids: Tensor) -> Tensor:
    """Real length of each post-padded row (id 0 = padding): last non-zero position + 1, at least 1."""
    positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
    return ((ids != 0) * positions).amax(1).clamp(min=1)


class EmbeddingBiLSTM(nn.Module):
    """Chollet: Embedding(V, 256, mask_zero=True) -> Bidirectional(LSTM(32)) -> Dropout(0.5) -> Dense(1).

    The mask is a packed sequence: each row runs only over its real tokens, so the backward
    direction starts at the last real token and padding never changes the output."""

    def __init__(self, vocab_size: int, embed_dim: int, units: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, units, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * units, 1)

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) int64 -> (B,)
        packed = pack_padded_sequence(self.embedding(ids), lengths_of(ids).cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # (2, B, U), in the batch's own order
        return self.dense(self.dropout(torch.cat([h_n[0], h_n[1]], -1))).squeeze(-1)


class CharRNN(nn.Module):
    """Geron ch. 16: Embedding(V, 16) -> GRU(128, return_sequences=True) -> Dense(V).
    (B, T) int64 -> (B, T, V) logits; any length (no context limit)."""

    context_length = None

    def __init__(self, cell: type[nn.RNNBase], vocab_size: int, embed_dim: int, units: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = cell(embed_dim, units, batch_first=True)
        self.dense = nn.Linear(units, vocab_size)

    def forward(self, ids: Tensor) -> Tensor:
        out, _ = self.rnn(self.embedding(ids))  # (B, T, U)
        return self.dense(out)
