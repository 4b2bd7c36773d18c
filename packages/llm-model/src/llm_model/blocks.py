"""The building blocks of a GPT model, as in chapter 4 of the book.

``LayerNorm`` and ``GELU`` are the book's classes with the book's parameter
names; their forward passes call torch's fused kernels, which compute the
book's formulas (written out in the docstrings and tested against them to
1e-6) in one pass instead of six, and save less for backward. Attention comes
from :mod:`llm_attention`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llm_attention import MultiHeadAttention
from llm_model.config import GPTConfig

__all__ = ["GELU", "FeedForward", "LayerNorm", "TransformerBlock"]


class LayerNorm(nn.Module):
    """Layer normalisation over the last dimension with a learned ``scale`` and ``shift``.

    ``scale * (x - mean) / sqrt(var + eps) + shift`` with the biased variance
    (as GPT-2), computed by ``torch.nn.functional.layer_norm``.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GELU activation, tanh approximation (what GPT-2 was trained with).

    ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``, computed by
    ``torch.nn.functional.gelu(x, approximate="tanh")``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


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
