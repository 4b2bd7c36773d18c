"""The building blocks of a GPT model, as in chapter 4 of the book.

``LayerNorm`` and ``GELU`` are the book's own classes (tested against
``torch.nn.LayerNorm`` and ``torch.nn.GELU(approximate="tanh")``); attention
comes from :mod:`llm_attention`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from llm_attention import MultiHeadAttention
from llm_model.config import GPTConfig

__all__ = ["GELU", "FeedForward", "LayerNorm", "TransformerBlock"]


class LayerNorm(nn.Module):
    """Layer normalisation over the last dimension with a learned ``scale`` and ``shift``."""

    def __init__(self, emb_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # biased, like GPT-2's
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift


class GELU(nn.Module):
    """GELU activation, tanh approximation (what GPT-2 was trained with)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    """Position-wise MLP: ``emb_dim -> 4 * emb_dim -> GELU -> emb_dim``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(config.emb_dim, 4 * config.emb_dim),
            GELU(),
            nn.Linear(4 * config.emb_dim, config.emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (b, t, emb_dim)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + drop(att(norm1(x)))`` then ``x + drop(ff(norm2(x)))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.att = MultiHeadAttention(
            config.emb_dim,
            config.emb_dim,
            config.n_heads,
            context_length=config.context_length,
            dropout=config.drop_rate,
            qkv_bias=config.qkv_bias,
            n_kv_heads=config.n_kv_heads,
            backend=config.attention,
        )
        self.ff = FeedForward(config)
        self.norm1 = LayerNorm(config.emb_dim)
        self.norm2 = LayerNorm(config.emb_dim)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(
        self, x: torch.Tensor, *, cache: Any = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        # x: (b, t, emb_dim) throughout
        shortcut = x
        x = self.att(self.norm1(x), cache=cache, padding_mask=padding_mask)
        x = self.drop_shortcut(x) + shortcut

        shortcut = x
        x = self.ff(self.norm2(x))
        return self.drop_shortcut(x) + shortcut
