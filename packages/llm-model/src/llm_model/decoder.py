"""What the rotary-position decoders (Llama, Mistral, Phi) share: their config base and the model plumbing.

Unlike GPT-2 these models have no position embedding: each attention layer
rotates its queries and keys (RoPE, :class:`llm_attention.RotaryEmbedding`).
:class:`RotaryDecoder` holds the parts that do not depend on the block:
the KV cache, the context-length check, left-padding positions and the
``embed -> blocks -> final norm -> head`` loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from llm_attention import RotaryEmbedding
from llm_core.errors import ConfigError
from llm_model.config import DecoderConfig
from llm_model.gpt import CausalLMMixin

__all__ = ["RotaryDecoder", "RotaryDecoderConfig"]


def _positive_number(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name}: expected a positive number, got {value!r}")


@dataclass(frozen=True)
class RotaryDecoderConfig(DecoderConfig):
    """The fields every rotary decoder has (defaults: the Llama 2 7B shape, as ``transformers``).

    :class:`~llm_model.LlamaConfig` is this class; :class:`~llm_model.MistralConfig`
    and :class:`~llm_model.PhiConfig` change defaults and add their own fields.

    Attributes:
        vocab_size: number of token ids.
        context_length: the longest sequence (RoPE positions and the KV cache).
        emb_dim: width of the residual stream (Hugging Face ``hidden_size``).
        n_heads: query heads per layer; must divide ``emb_dim``.
        n_layers: number of transformer blocks.
        n_kv_heads: key/value heads (grouped-query attention); must divide ``n_heads``
            (``None``: ``n_heads``).
        hidden_dim: width of the feed-forward (``intermediate_size``).
        rope_theta: base of the RoPE frequencies (10 000; 500 000 for Llama 3).
        rope_scaling: ``None`` or a :class:`llm_attention.RotaryEmbedding` scaling dict,
            e.g. ``{"type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}``.
        norm_eps: the norms' epsilon (``rms_norm_eps`` / ``layer_norm_eps``).
        drop_rate: dropout on the attention weights (training only).
        tie_weights: share the output head's weight with the token embedding.
        attention: name of a registered attention backend (``"naive"``, ``"sdpa"``, …).
    """

    positive_fields: ClassVar[tuple[str, ...]] = (*DecoderConfig.positive_fields, "hidden_dim")

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

    @property
    def rotary_dim(self) -> int:
        """Features of each head that RoPE rotates (all of them here)."""
        return self.head_dim

    def check(self) -> None:
        """``norm_eps``, ``rope_theta``, an even ``rotary_dim`` and a valid ``rope_scaling``."""
        _positive_number("norm_eps", self.norm_eps)
        _positive_number("rope_theta", self.rope_theta)
        head_dim, rotary_dim = self.head_dim, self.rotary_dim
        if rotary_dim < 2 or rotary_dim % 2:
            if rotary_dim == head_dim:
                emb = self.emb_dim
                valid = [d for d in range(1, emb + 1) if emb % d == 0 and emb // d % 2 == 0]
                raise ConfigError(
                    f"n_heads={self.n_heads} gives head_dim={head_dim}, but RoPE needs an even head_dim; "
                    f"choose n_heads from {', '.join(map(str, valid[:12]))}{', …' if len(valid) > 12 else ''}"
                )
            factor = getattr(self, "partial_rotary_factor", None)
            factors = ", ".join(f"{k / head_dim:g}" for k in range(2, head_dim + 1, 2))
            raise ConfigError(
                f"partial_rotary_factor={factor!r} rotates int({factor!r} * head_dim={head_dim}) = "
                f"{rotary_dim} features; RoPE needs an even number, at least 2: choose from {factors}"
            )
        try:  # RotaryEmbedding owns the rules for rotary_dim and rope_scaling: ask it
            RotaryEmbedding(
                head_dim,
                max_seq_len=self.context_length,
                theta=self.rope_theta,
                rotary_dim=rotary_dim,
                scaling=self.rope_scaling,
            )
        except ConfigError as exc:
            raise ConfigError(f"rope: {exc}") from None


class RotaryDecoder(CausalLMMixin, nn.Module):
    """Base class of the decoders with rotary positions: subclasses build the modules below.

    ``tok_emb`` (token embedding), ``drop_emb``, ``trf_blocks`` (:class:`~llm_model.Block`\\ s,
    called as ``block(x, cache=, padding_mask=, positions=)``), ``final_norm`` and
    ``out_head``; then they call :meth:`init_parameters`. ``forward`` and
    ``new_cache`` behave as :class:`GPTModel`'s.
    """

    config: Any
    architecture: str
    tok_emb: nn.Embedding
    drop_emb: nn.Module
    trf_blocks: nn.ModuleList
    final_norm: nn.Module
    out_head: nn.Linear

    def rotary_embedding(self, rotary_dim: int | None = None) -> RotaryEmbedding:
        """The RoPE module shared by every layer (its buffers are not saved)."""
        config = self.config
        return RotaryEmbedding(
            config.head_dim,
            max_seq_len=config.context_length,
            theta=config.rope_theta,
            rotary_dim=rotary_dim,
            scaling=config.rope_scaling,
        )

    def init_parameters(self) -> None:
        """N(0, 0.02) linear/embedding weights, zero biases, no residual scaling (as Hugging Face)."""
        self._initialise("gpt2", scale_residual=False)

    def _embed(self, idx: torch.Tensor, past: int, positions: torch.Tensor | None) -> torch.Tensor:
        # No position embedding: the attention rotates queries and keys (RoPE) at ``positions``.
        return self.drop_emb(self.tok_emb(idx))  # (b, t, emb_dim)
