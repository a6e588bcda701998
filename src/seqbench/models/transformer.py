"""Transformers: a small forecast encoder, Chollet's text encoder (ch. 11), a nanoGPT-style char model."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqbench.models import settings as S
from seqbench.models.common import ForecastHead, check_divisible, keras_init_
from seqbench.tasks import CharTask, ForecastTask, TextTask


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """Vaswani et al. 2017 fixed positions, (length, dim)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return pe


def _check_length(model: str, length: int, limit: int) -> None:
    if length > limit:
        raise ValueError(f"{model}: input of {length} steps is longer than its {limit} positions; "
                         f"crop the input to its last {limit} steps")


class ForecastTransformer(nn.Module):
    """Patch tokens (Nie et al. 2023, PatchTST: `patch_len` consecutive steps of all inputs per token,
    the window left-padded with its first step to whole patches) + sinusoidal positions -> pre-norm
    nn.TransformerEncoder -> the last token's encoding -> Dense to (B, H, F_out). Patches cut the
    attention cost by patch_len^2: one token per step made the Jena window (120 steps) ~35x slower."""

    def __init__(self, task: ForecastTask, settings: S.ForecastTransformerSettings):
        super().__init__()
        check_divisible("transformer", "forecast.d_model", settings.d_model, "forecast.heads", settings.heads)
        self.patch_len = settings.patch_len
        tokens = math.ceil(task.lookback / settings.patch_len)
        self.project = nn.Linear(settings.patch_len * task.n_inputs, settings.d_model)
        self.register_buffer("positions", sinusoidal_positions(tokens, settings.d_model), persistent=False)
        self.dropout = nn.Dropout(settings.dropout)
        layer = nn.TransformerEncoderLayer(settings.d_model, settings.heads, settings.ff, settings.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, settings.layers, norm=nn.LayerNorm(settings.d_model),
                                             enable_nested_tensor=False)
        self.head = ForecastHead(settings.d_model, task)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F_in) -> (B, H, F_out)
        batch, steps, features = x.shape
        pad = -steps % self.patch_len
        if pad:
            x = torch.cat([x[:, :1].expand(batch, pad, features), x], dim=1)  # (B, T + pad, F_in)
        patches = x.reshape(batch, -1, self.patch_len * features)  # (B, N, P * F_in)
        _check_length("transformer", patches.shape[1], self.positions.shape[0])
        z = self.dropout(self.project(patches) + self.positions[: patches.shape[1]])  # (B, N, d)
        for layer in self.encoder.layers:
            z = pre_norm_block(layer, z)
        return self.head(self.encoder.norm(z)[:, -1])


def pre_norm_block(layer: nn.TransformerEncoderLayer, x: Tensor) -> Tensor:
    """nn.TransformerEncoderLayer(norm_first=True, batch_first=True)(x) for x (B, N, d) with N a few
    patch tokens: the same parameters, the same dropout masks from the same generator (each drawn over
    the layout ATen draws it in), the outputs equal up to float rounding. Written out because ATen's
    softmax over a last dimension narrower than 16 takes a scalar path (15 tokens: 4.3 ms against
    1.0 ms over dimension -2 of the transposed scores, per (256, 4, 15, 15) batch here): the attention
    weights are computed keys-first and normalized over dimension -2. A Jena training batch (256
    windows, 1 thread) took 0.77x as long as through nn.TransformerEncoder, batches of both alternating."""
    attn = layer.self_attn
    heads = attn.num_heads
    batch, tokens, dim = x.shape
    q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).view(
        batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)  # 3 x (B, heads, N, d / heads)
    scores = k @ (q * (dim // heads) ** -0.5).transpose(-2, -1)  # (B, heads, N keys, N queries)
    weights = scores.softmax(-2).transpose(-2, -1).contiguous()  # (B, heads, N queries, N keys)
    weights = F.dropout(weights, attn.dropout, layer.training)
    # MHA computes its output time-major, (N, B, d), and dropout1's mask follows that layout
    context = (weights @ v).permute(2, 0, 1, 3).reshape(tokens, batch, dim)  # (N, B, d)
    x = x + layer.dropout1(attn.out_proj(context).transpose(0, 1))
    return x + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(x))))))


def build_forecast_transformer(task: ForecastTask, settings: S.TransformerSettings) -> nn.Module:
    return ForecastTransformer(task, settings.forecast)


class TextTransformer(nn.Module):
    """Chollet ch. 11: PositionalEmbedding (token + learned position) -> TransformerEncoder block
    (MultiHeadAttention(heads 2) + LayerNorm, Dense(32, relu) -> Dense(256) + LayerNorm) ->
    GlobalMaxPooling1D -> Dropout(0.5) -> Dense(1). Padding (id 0) is masked in the attention
    and in the max-pool, so extra padding does not change the output."""

    def __init__(self, task: TextTask, settings: S.TextTransformerSettings):
        super().__init__()
        check_divisible("transformer", "text.embed_dim", settings.embed_dim, "text.heads", settings.heads)
        self.tokens = nn.Embedding(task.vocab_size, settings.embed_dim)
        self.positions = nn.Embedding(task.sequence_length, settings.embed_dim)
        # The book's block has no dropout inside; `dropout` is the one before the classifier.
        self.block = nn.TransformerEncoderLayer(settings.embed_dim, settings.heads, settings.ff, dropout=0.0,
                                                batch_first=True)
        self.dropout = nn.Dropout(settings.dropout)
        self.dense = nn.Linear(settings.embed_dim, 1)
        keras_init_(self)

    def forward(self, ids: Tensor) -> Tensor:  # (B, L) int64 -> (B,)
        _check_length("transformer", ids.shape[1], self.positions.num_embeddings)
        padding = ids == 0  # (B, L)
        padding[:, 0] &= ~padding.all(1)  # an empty document keeps one position, so softmax is defined
        z = self.tokens(ids) + self.positions.weight[: ids.shape[1]]  # (B, L, E)
        z = self.block(z, src_key_padding_mask=padding)
        pooled = z.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(1)  # (B, E)
        return self.dense(self.dropout(pooled)).squeeze(-1)


def build_text_transformer(task: TextTask, settings: S.TransformerSettings) -> nn.Module:
    return TextTransformer(task, settings.text)


class CharTransformer(nn.Module):
    """A small causal GPT (nanoGPT): token + learned position embeddings, pre-norm blocks with
    causal self-attention and a GELU MLP, final LayerNorm, head tied to the token embedding.
    (B, T <= window) int64 -> (B, T, V) logits; `context_length` tells a sampler where to crop."""

    def __init__(self, task: CharTask, settings: S.CharTransformerSettings):
        super().__init__()
        check_divisible("char_transformer", "d_model", settings.d_model, "heads", settings.heads)
        self.context_length = task.window
        self.tokens = nn.Embedding(task.vocab_size, settings.d_model)
        self.positions = nn.Embedding(task.window, settings.d_model)
        self.dropout = nn.Dropout(settings.dropout)
        layer = nn.TransformerEncoderLayer(settings.d_model, settings.heads, settings.ff, settings.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, settings.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(settings.d_model)
        self.head = nn.Linear(settings.d_model, task.vocab_size, bias=False)
        for embedding in (self.tokens, self.positions):  # nanoGPT's init; N(0, 1) would swamp the tied head
            nn.init.normal_(embedding.weight, std=0.02)
        self.head.weight = self.tokens.weight

    def forward(self, ids: Tensor) -> Tensor:
        steps = ids.shape[1]
        _check_length("char_transformer", steps, self.context_length)
        z = self.dropout(self.tokens(ids) + self.positions.weight[:steps])  # (B, T, d)
        causal = nn.Transformer.generate_square_subsequent_mask(steps, device=ids.device, dtype=z.dtype)
        z = self.blocks(z, mask=causal, is_causal=True)
        return self.head(self.norm(z))  # (B, T, V)


def build_char_transformer(task: CharTask, settings: S.CharTransformerSettings) -> nn.Module:
    return CharTransformer(task, settings)
