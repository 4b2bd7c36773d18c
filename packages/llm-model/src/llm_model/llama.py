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
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from llm_attention import RotaryEmbedding
from llm_core.errors import ConfigError
from llm_model.blocks import Block, BlockInputs, causal_self_attention
from llm_model.decoder import RotaryDecoder, RotaryDecoderConfig
from llm_model.norms import RMSNorm

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "LlamaBlock",
    "LlamaConfig",
    "LlamaModel",
    "MistralConfig",
    "MistralModel",
    "SwiGLUFeedForward",
]


@dataclass(frozen=True)
class LlamaConfig(RotaryDecoderConfig):
    """Hyperparameters of a Llama-style model (defaults: the Llama 2 7B shape, as ``transformers``).

    The fields of :class:`~llm_model.decoder.RotaryDecoderConfig`: ``vocab_size``,
    ``context_length``, ``emb_dim``, ``n_heads``, ``n_layers``, ``n_kv_heads``,
    ``hidden_dim`` (the SwiGLU width), ``rope_theta``, ``rope_scaling``, ``norm_eps``
    (RMSNorm's ``rms_norm_eps``), ``drop_rate``, ``tie_weights`` and ``attention``.
    """

    @property
    def window(self) -> int | None:
        """The attention window (``None``: full causal attention)."""
        return None


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

    def check(self) -> None:
        """The rotary checks, then ``sliding_window``."""
        super().check()
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


class LlamaBlock(Block):
    """Pre-RMSNorm block: ``x + att(norm1(x))`` then ``x + ff(norm2(x))``."""

    residual_projections = ("att.out_proj", "ff.down")

    def __init__(self, config: LlamaConfig, rope: RotaryEmbedding) -> None:
        super().__init__()
        self.norm1 = RMSNorm(config.emb_dim, eps=config.norm_eps)
        self.att = causal_self_attention(
            config, qkv_bias=False, out_bias=False, rope=rope, window=config.window
        )
        self.norm2 = RMSNorm(config.emb_dim, eps=config.norm_eps)
        self.ff = SwiGLUFeedForward(config.emb_dim, config.hidden_dim)

    def forward(self, x: torch.Tensor, **inputs: Unpack[BlockInputs]) -> torch.Tensor:
        # x: (b, t, emb_dim) throughout
        x = x + self.att(self.norm1(x), **inputs)
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
        self.config = self._checked_config(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.drop_emb = nn.Identity()  # Llama has no embedding dropout
        rope = self.rotary_embedding()
        self.trf_blocks = nn.ModuleList([LlamaBlock(config, rope) for _ in range(config.n_layers)])
        self.final_norm = RMSNorm(config.emb_dim, eps=config.norm_eps)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.init_parameters()


class MistralModel(LlamaModel):
    """Mistral: :class:`LlamaModel` with sliding-window attention (``config.sliding_window``)."""

    config_class: type[LlamaConfig] = MistralConfig
    architecture = "mistral"
