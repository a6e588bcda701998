"""Recurrent text classifiers (Chollet ch. 11) and character language models (Geron ch. 16).
Builders are in `recurrent` (the registry's paths)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqbench.models.common import keras_init_, lengths_of


class OneHotBiLSTM(nn.Module):
    """Chollet: one-hot tokens -> Bidirectional(LSTM(32)) -> Dropout(0.5) -> Dense(1).

    Exact but cheap: one_hot(v) @ W_ih^T is column v of W_ih, so `input_weights` (V, 8U) holds the
    input weights of both directions as rows [forward 4U | backward 4U]; each direction is its own
    LSTM whose input weights are a fixed identity (4U, 4U) (requires_grad=False), and the backward
    one reads the text from its end. No (B, L, V) one-hot is ever built. Two LSTMs rather than one
    bidirectional nn.LSTM because that one would feed all 8U columns to each direction (a (8U, 4U)
    selector): 264 -> 168 ms per training batch of 32 x 600 tokens on one CPU thread, same outputs.
    No masking, as in the book: padding id 0 is a token like any other.
    """

    def __init__(self, vocab_size: int, units: int, dropout: float):
        super().__init__()
        gates = 4 * units
        self.input_weights = nn.Embedding(vocab_size, 2 * gates)
        self.forward_lstm = nn.LSTM(gates, units, batch_first=True)
        self.backward_lstm = nn.LSTM(gates, units, batch_first=True)
        for lstm in (self.forward_lstm, self.backward_lstm):
            lstm.weight_ih_l0.data.copy_(torch.eye(gates))
            lstm.weight_ih_l0.requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * units, 1)
        keras_init_(self)
        # each direction's input kernel (V, 4U) Glorot-uniform, as Keras initializes the one-hot LSTM's
        limit = math.sqrt(6.0 / (vocab_size + gates))
        nn.init.uniform_(self.input_weights.weight, -limit, limit)

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) int64 -> (B,)
        gates = self.forward_lstm.input_size
        projected = self.input_weights(ids)  # (B, L, 8U): both directions' input projections
        forward, _ = self.forward_lstm(projected[..., :gates])  # (B, L, U)
        backward, _ = self.backward_lstm(projected[..., gates:].flip(1))  # (B, L, U), last token first
        last = torch.cat([forward[:, -1], backward[:, -1]], -1)  # (B, 2U): each direction's end
        return self.dense(self.dropout(last)).squeeze(-1)


class EmbeddingBiLSTM(nn.Module):
    """Chollet: Embedding(V, 256, mask_zero=True) -> Bidirectional(LSTM(32)) -> Dropout(0.5) -> Dense(1).

    The mask, exactly but without packed sequences (3x slower on CPU, no fused kernel): the forward
    LSTM runs over the padded rows and is read at each row's last real token (later padding cannot
    reach back); the backward LSTM runs over each row's real tokens reversed (padding left behind
    them) and is read at the same place. So padding never changes the output."""

    def __init__(self, vocab_size: int, embed_dim: int, units: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.forward_lstm = nn.LSTM(embed_dim, units, batch_first=True)
        self.backward_lstm = nn.LSTM(embed_dim, units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * units, 1)
        keras_init_(self)

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) int64 -> (B,)
        lengths = lengths_of(ids)  # (B,)
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]  # (1, L)
        reverse = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)  # (B, L)
        embedded = self.embedding(ids)  # (B, L, E)
        forward, _ = self.forward_lstm(embedded)  # (B, L, U)
        backward, _ = self.backward_lstm(embedded.gather(1, reverse[..., None].expand_as(embedded)))
        last = (lengths - 1)[:, None, None].expand(-1, 1, forward.shape[-1])  # (B, 1, U)
        state = torch.cat([forward.gather(1, last), backward.gather(1, last)], -1).squeeze(1)  # (B, 2U)
        return self.dense(self.dropout(state)).squeeze(-1)


class CharRNN(nn.Module):
    """Geron ch. 16: Embedding(V, 16) -> GRU(128, return_sequences=True) -> Dense(V).
    (B, T) int64 -> (B, T, V) logits; any length (no context limit)."""

    context_length = None

    def __init__(self, cell: type[nn.RNNBase], vocab_size: int, embed_dim: int, units: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = cell(embed_dim, units, batch_first=True)
        self.dense = nn.Linear(units, vocab_size)
        keras_init_(self)

    def forward(self, ids: Tensor) -> Tensor:
        out, _ = self.rnn(self.embedding(ids))  # (B, T, U)
        return self.dense(out)
