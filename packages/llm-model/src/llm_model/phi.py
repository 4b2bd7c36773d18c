"""Phi (Phi-1, Phi-1.5, Phi-2): parallel attention and MLP from one shared LayerNorm, partial RoPE.

Each block computes ``x + att(ln(x)) + mlp(ln(x))``: attention and the
feed-forward read the same normalised input and their outputs are added to
the residual together (GPT-J style). Only the first
``partial_rotary_factor * head_dim`` features of each query/key head are
rotated. Biases everywhere (query/key/value, attention output, MLP, and the
output head); GELU with the tanh approximation (``gelu_new``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llm_attention import MultiHeadAttention, RotaryEmbedding
from llm_core.errors import ConfigError
from llm_model.blocks import GELU, LayerNorm
from llm_model.decoder import RotaryDecoder, check_decoder_config

__all__ = ["PhiBlock", "PhiConfig", "PhiMLP", "PhiModel"]


@dataclass(frozen=True)
class PhiConfig:
    """Hyperparameters of a Phi-style model (defaults: the Phi-2 shape).

    Attributes:
        vocab_size: number of token ids (51200 for Phi's CodeGen tokenizer, padded).
        context_length: the longest sequence (RoPE positions and the KV cache).
        emb_dim: width of the residual stream (``hidden_size``).
        n_heads: query heads per layer; must divide ``emb_dim``.
        n_layers: number of transformer blocks.
        n_kv_heads: key/value heads; must divide ``n_heads`` (``None``: ``n_heads``).
        hidden_dim: width of the MLP (``intermediate_size``).
        partial_rotary_factor: fraction of each head's features that RoPE rotates;
            ``int(partial_rotary_factor * head_dim)`` must be even and at least 2.
        rope_theta: base of the RoPE frequencies.
        rope_scaling: ``None`` or a :class:`llm_attention.RotaryEmbedding` scaling dict.
        norm_eps: LayerNorm epsilon (``layer_norm_eps``).
        drop_rate: dropout on the embeddings, attention weights and both branch outputs.
        tie_weights: share the output head's weight with the token embedding.
        attention: name of a registered attention backend.
    """

    vocab_size: int = 51200
    context_length: int = 2048
    emb_dim: int = 2560
    n_heads: int = 32
    n_layers: int = 32
    n_kv_heads: int | None = None
    hidden_dim: int = 10240
    partial_rotary_factor: float = 0.4
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    norm_eps: float = 1e-5
    drop_rate: float = 0.0
    tie_weights: bool = False
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        factor = self.partial_rotary_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0.0 < factor <= 1.0:
            raise ConfigError(f"partial_rotary_factor: expected a number in (0, 1], got {factor!r}")
        check_decoder_config(self, rotary_factor=factor)

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``emb_dim // n_heads``."""
        return self.emb_dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (``n_kv_heads`` or ``n_heads``)."""
        return self.n_kv_heads or self.n_heads

    @property
    def rotary_dim(self) -> int:
        """Features of each head that RoPE rotates: ``int(partial_rotary_factor * head_dim)``."""
        return int(self.head_dim * self.partial_rotary_factor)

    def to_dict(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-serialisable dict (the keys of ``config.json``)."""
        from llm_core.config_io import config_to_dict

        return config_to_dict(self)


class PhiMLP(nn.Module):
    """``emb_dim -> hidden_dim -> GELU (tanh) -> emb_dim`` with biases: the book's FeedForward, any width."""

    def __init__(self, emb_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(emb_dim, hidden_dim), GELU(), nn.Linear(hidden_dim, emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (b, t, emb_dim)


class PhiBlock(nn.Module):
    """Parallel block: ``h = norm(x)``; ``x + drop(att(h)) + drop(ff(h))``."""

    def __init__(self, config: PhiConfig, rope: RotaryEmbedding) -> None:
        super().__init__()
        self.norm = LayerNorm(config.emb_dim, eps=config.norm_eps)
        self.att = MultiHeadAttention(
            config.emb_dim,
            config.emb_dim,
            config.n_heads,
            context_length=config.context_length,
            dropout=config.drop_rate,
            qkv_bias=True,
            n_kv_heads=config.n_kv_heads,
            backend=config.attention,
            rope=rope,
            out_bias=True,
        )
        self.ff = PhiMLP(config.emb_dim, config.hidden_dim)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: Any = None,
        padding_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.norm(x)  # (b, t, emb_dim), read by both branches
        att = self.att(h, cache=cache, padding_mask=padding_mask, positions=positions)
        return x + self.drop_shortcut(att) + self.drop_shortcut(self.ff(h))


class PhiModel(RotaryDecoder):
    """Phi: token embedding, ``n_layers`` :class:`PhiBlock`\\ s, final LayerNorm, output head with a bias."""

    config_class = PhiConfig
    architecture = "phi"

    def __init__(self, config: PhiConfig) -> None:
        super().__init__()
        if not isinstance(config, PhiConfig):
            raise ConfigError(f"PhiModel: expected a PhiConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        rope = self.rotary_embedding(config.rotary_dim)
        self.trf_blocks = nn.ModuleList([PhiBlock(config, rope) for _ in range(config.n_layers)])
        self.final_norm = LayerNorm(config.emb_dim, eps=config.norm_eps)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=True)
        self.init_weights()
