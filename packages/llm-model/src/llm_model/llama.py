"""Llama (2/3) and Mistral: pre-RMSNorm blocks, SwiGLU feed-forward, RoPE and grouped-query attention.

The differences from the book's GPT-2, one at a time (as in the book's
"converting GPT to Llama" bonus material):

* no position embedding: queries and keys are rotated (RoPE) in every layer;
* :class:`~llm_model.norms.RMSNorm` instead of LayerNorm;
* a SwiGLU feed-forward (``down(silu(gate(x)) * up(x))``) instead of GELU;
* grouped-query attention (``n_kv_heads`` key/value heads);
* no biases anywhere, and an untied output head by default.

Mistral is Llama plus sliding-window attention (``sliding_window``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from llm_attention import MultiHeadAttention, RotaryEmbedding
from llm_core.errors import ConfigError
from llm_model.decoder import RotaryDecoder, check_decoder_config
from llm_model.norms import RMSNorm

__all__ = [
    "LlamaBlock",
    "LlamaConfig",
    "LlamaModel",
    "MistralConfig",
    "MistralModel",
    "SwiGLUFeedForward",
]


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a Llama-style model (defaults: the Llama 2 7B shape, as ``transformers``).

    Attributes:
        vocab_size: number of token ids.
        context_length: the longest sequence (RoPE positions and the KV cache).
        emb_dim: width of the residual stream (Hugging Face ``hidden_size``).
        n_heads: query heads per layer; must divide ``emb_dim``.
        n_layers: number of transformer blocks.
        n_kv_heads: key/value heads (grouped-query attention); must divide ``n_heads``
            (``None``: ``n_heads``).
        hidden_dim: width of the SwiGLU feed-forward (``intermediate_size``).
        rope_theta: base of the RoPE frequencies (10 000; 500 000 for Llama 3).
        rope_scaling: ``None`` or a :class:`llm_attention.RotaryEmbedding` scaling dict,
            e.g. ``{"type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}``.
        norm_eps: RMSNorm epsilon (``rms_norm_eps``).
        drop_rate: dropout on the attention weights (training only).
        tie_weights: share the output head's weight with the token embedding.
        attention: name of a registered attention backend (``"naive"``, ``"sdpa"``, …).
    """

    vocab_size: int = 32000
    context_length: int = 2048
    emb_dim: int = 4096
    n_heads: int = 32
    n_layers: int = 32
    n_kv_heads: int | None = None
    hidden_dim: int = 11008
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    norm_eps: float = 1e-6
    drop_rate: float = 0.0
    tie_weights: bool = False
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        check_decoder_config(self)

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``emb_dim // n_heads``."""
        return self.emb_dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (``n_kv_heads`` or ``n_heads``)."""
        return self.n_kv_heads or self.n_heads

    @property
    def window(self) -> int | None:
        """The attention window (``None``: full causal attention)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-serialisable dict (the keys of ``config.json``)."""
        from llm_core.config_io import config_to_dict

        return config_to_dict(self)


@dataclass(frozen=True)
class MistralConfig(LlamaConfig):
    """A :class:`LlamaConfig` plus ``sliding_window``; defaults: the Mistral 7B v0.1 shape.

    Attributes:
        sliding_window: each token attends to itself and the ``sliding_window - 1``
            tokens before it (``None``: full causal attention, as Mistral v0.2+).
    """

    vocab_size: int = 32000
    context_length: int = 32768
    emb_dim: int = 4096
    n_heads: int = 32
    n_layers: int = 32
    n_kv_heads: int | None = 8
    hidden_dim: int = 14336
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    sliding_window: int | None = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        window = self.sliding_window
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ConfigError(
                f"sliding_window: expected a positive integer (tokens each position sees) or null, "
                f"got {window!r}"
            )

    @property
    def window(self) -> int | None:
        """The attention window: ``sliding_window``."""
        return self.sliding_window


class SwiGLUFeedForward(nn.Module):
    """Gated feed-forward: ``down(silu(gate(x)) * up(x))``, ``emb_dim -> hidden_dim -> emb_dim``, no bias."""

    def __init__(self, emb_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(emb_dim, hidden_dim, bias=False)
        self.up = nn.Linear(emb_dim, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, emb_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))  # (b, t, emb_dim)


class LlamaBlock(nn.Module):
    """Pre-RMSNorm block: ``x + att(norm1(x))`` then ``x + ff(norm2(x))``."""

    def __init__(self, config: LlamaConfig, rope: RotaryEmbedding) -> None:
        super().__init__()
        self.norm1 = RMSNorm(config.emb_dim, eps=config.norm_eps)
        self.att = MultiHeadAttention(
            config.emb_dim,
            config.emb_dim,
            config.n_heads,
            context_length=config.context_length,
            dropout=config.drop_rate,
            qkv_bias=False,
            n_kv_heads=config.n_kv_heads,
            backend=config.attention,
            window=config.window,
            rope=rope,
            out_bias=False,
        )
        self.norm2 = RMSNorm(config.emb_dim, eps=config.norm_eps)
        self.ff = SwiGLUFeedForward(config.emb_dim, config.hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: Any = None,
        padding_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # x: (b, t, emb_dim) throughout
        x = x + self.att(self.norm1(x), cache=cache, padding_mask=padding_mask, positions=positions)
        return x + self.ff(self.norm2(x))


class LlamaModel(RotaryDecoder):
    """Llama: token embedding, ``n_layers`` :class:`LlamaBlock`\\ s, final RMSNorm, output head.

    ``forward(idx, *, cache=None, padding_mask=None)`` -> logits ``(b, t, vocab_size)``,
    with the same cache and padding semantics as :class:`~llm_model.GPTModel`.
    """

    config_class: type[LlamaConfig] = LlamaConfig
    architecture = "llama"

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__}: expected a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.drop_emb = nn.Identity()  # Llama has no embedding dropout
        rope = self.rotary_embedding()
        self.trf_blocks = nn.ModuleList([LlamaBlock(config, rope) for _ in range(config.n_layers)])
        self.final_norm = RMSNorm(config.emb_dim, eps=config.norm_eps)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.init_weights()


class MistralModel(LlamaModel):
    """Mistral: :class:`LlamaModel` with sliding-window attention (``config.sliding_window``)."""

    config_class: type[LlamaConfig] = MistralConfig
    architecture = "mistral"
