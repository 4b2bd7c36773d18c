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
from typing import TYPE_CHECKING

import torch
from torch import nn

from llm_attention import RotaryEmbedding
from llm_core.errors import ConfigError
from llm_model.blocks import GELU, Block, BlockInputs, LayerNorm, causal_self_attention
from llm_model.decoder import RotaryDecoder, RotaryDecoderConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["PhiBlock", "PhiConfig", "PhiMLP", "PhiModel"]


@dataclass(frozen=True)
class PhiConfig(RotaryDecoderConfig):
    """Hyperparameters of a Phi-style model (defaults: the Phi-2 shape).

    The fields of :class:`~llm_model.decoder.RotaryDecoderConfig` (``vocab_size``
    51200 for Phi's CodeGen tokenizer, padded; ``hidden_dim`` the MLP's width;
    ``norm_eps`` LayerNorm's ``layer_norm_eps``; ``drop_rate`` also on the embeddings
    and both branch outputs), plus:

    Attributes:
        partial_rotary_factor: fraction of each head's features that RoPE rotates;
            ``int(partial_rotary_factor * head_dim)`` must be even and at least 2.
    """

    vocab_size: int = 51200
    emb_dim: int = 2560
    hidden_dim: int = 10240
    norm_eps: float = 1e-5
    partial_rotary_factor: float = 0.4

    def __post_init__(self) -> None:
        factor = self.partial_rotary_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0.0 < factor <= 1.0:
            raise ConfigError(f"partial_rotary_factor: expected a number in (0, 1], got {factor!r}")
        super().__post_init__()

    @property
    def rotary_dim(self) -> int:
        """Features of each head that RoPE rotates: ``int(partial_rotary_factor * head_dim)``."""
        return int(self.head_dim * self.partial_rotary_factor)


class PhiMLP(nn.Module):
    """``emb_dim -> hidden_dim -> GELU (tanh) -> emb_dim`` with biases: the book's FeedForward, any width."""

    def __init__(self, emb_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(emb_dim, hidden_dim), GELU(), nn.Linear(hidden_dim, emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (b, t, emb_dim)


class PhiBlock(Block):
    """Parallel block: ``h = norm(x)``; ``x + drop(att(h)) + drop(ff(h))``."""

    residual_projections = ("att.out_proj", "ff.layers.2")

    def __init__(self, config: PhiConfig, rope: RotaryEmbedding) -> None:
        super().__init__()
        self.norm = LayerNorm(config.emb_dim, eps=config.norm_eps)
        self.att = causal_self_attention(config, qkv_bias=True, rope=rope)
        self.ff = PhiMLP(config.emb_dim, config.hidden_dim)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(self, x: torch.Tensor, **inputs: Unpack[BlockInputs]) -> torch.Tensor:
        h = self.norm(x)  # (b, t, emb_dim), read by both branches
        att = self.att(h, **inputs)
        return x + self.drop_shortcut(att) + self.drop_shortcut(self.ff(h))


class PhiModel(RotaryDecoder):
    """Phi: token embedding, ``n_layers`` :class:`PhiBlock`\\ s, final LayerNorm, output head with a bias."""

    config_class = PhiConfig
    architecture = "phi"

    def __init__(self, config: PhiConfig) -> None:
        super().__init__()
        self.config = self._checked_config(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        rope = self.rotary_embedding(config.rotary_dim)
        self.trf_blocks = nn.ModuleList([PhiBlock(config, rope) for _ in range(config.n_layers)])
        self.final_norm = LayerNorm(config.emb_dim, eps=config.norm_eps)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=True)
        self.init_parameters()
