"""What the rotary-position decoders (Llama, Mistral, Phi) share: config checks and the model plumbing.

Unlike GPT-2 these models have no position embedding: each attention layer
rotates its queries and keys (RoPE, :class:`llm_attention.RotaryEmbedding`).
:class:`RotaryDecoder` holds the parts that do not depend on the block:
the KV cache, the context-length check, left-padding positions and the
``embed -> blocks -> final norm -> head`` loop.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from llm_attention import KVCache, RotaryEmbedding
from llm_core.errors import ConfigError
from llm_model.config import _choices
from llm_model.gpt import CausalLMMixin, GPTModel

__all__ = ["RotaryDecoder", "check_decoder_config"]


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")


def _positive_number(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name}: expected a positive number, got {value!r}")


def check_decoder_config(config: Any, *, rotary_factor: float = 1.0) -> None:
    """Validate the fields every rotary decoder config has; raise :class:`ConfigError` naming the field.

    Fields: ``vocab_size``, ``context_length``, ``emb_dim``, ``n_heads``,
    ``n_layers``, ``hidden_dim``, ``n_kv_heads``, ``drop_rate``,
    ``tie_weights``, ``norm_eps``, ``rope_theta``, ``rope_scaling``, ``attention``.
    RoPE rotates ``int(rotary_factor * head_dim)`` features, which must be even.
    """
    for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim"):
        _positive_int(name, getattr(config, name))
    drop = config.drop_rate
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0.0 <= drop < 1.0:
        raise ConfigError(f"drop_rate: expected a number in [0, 1), got {drop!r}")
    if not isinstance(config.tie_weights, bool):
        raise ConfigError(f"tie_weights: expected true or false, got {config.tie_weights!r}")
    _positive_number("norm_eps", config.norm_eps)
    _positive_number("rope_theta", config.rope_theta)
    if config.emb_dim % config.n_heads:
        raise ConfigError(
            f"n_heads={config.n_heads} does not divide emb_dim={config.emb_dim}; "
            f"choose n_heads from {_choices(config.emb_dim)}"
        )
    kv = config.n_kv_heads
    if kv is not None and (isinstance(kv, bool) or not isinstance(kv, int) or kv < 1 or config.n_heads % kv):
        raise ConfigError(
            f"n_kv_heads={kv!r} does not divide n_heads={config.n_heads}; "
            f"choose n_kv_heads from {_choices(config.n_heads)} or null"
        )
    head_dim = config.emb_dim // config.n_heads
    rotary_dim = int(head_dim * rotary_factor)
    if rotary_dim < 2 or rotary_dim % 2:
        if rotary_factor == 1.0:
            valid = [
                d
                for d in range(1, config.emb_dim + 1)
                if config.emb_dim % d == 0 and config.emb_dim // d % 2 == 0
            ]
            raise ConfigError(
                f"n_heads={config.n_heads} gives head_dim={head_dim}, but RoPE needs an even head_dim; "
                f"choose n_heads from {', '.join(map(str, valid[:12]))}{', …' if len(valid) > 12 else ''}"
            )
        factors = ", ".join(f"{k / head_dim:g}" for k in range(2, head_dim + 1, 2))
        raise ConfigError(
            f"partial_rotary_factor={rotary_factor!r} rotates int({rotary_factor!r} * head_dim={head_dim}) = "
            f"{rotary_dim} features; RoPE needs an even number, at least 2: choose from {factors}"
        )
    try:  # RotaryEmbedding owns the rules for rotary_dim and rope_scaling: ask it
        RotaryEmbedding(
            config.emb_dim // config.n_heads,
            max_seq_len=config.context_length,
            theta=config.rope_theta,
            rotary_dim=rotary_dim,
            scaling=config.rope_scaling,
        )
    except ConfigError as exc:
        raise ConfigError(f"rope: {exc}") from None
    _check_attention_backend(config.attention)


def _check_attention_backend(name: Any) -> None:
    from llm_core import get_registry

    if not isinstance(name, str) or not name:
        raise ConfigError(f"attention: expected a backend name such as 'sdpa', got {name!r}")
    backends = get_registry("attention")
    if len(backends) and name not in backends:
        raise ConfigError(
            f"attention: unknown backend '{name}'; "
            f"choose from {', '.join(backends)} (or install the plugin that provides it)"
        )


class RotaryDecoder(CausalLMMixin, nn.Module):
    """Base class of the decoders with rotary positions: subclasses build the modules below.

    ``tok_emb`` (token embedding), ``drop_emb``, ``trf_blocks`` (blocks called
    as ``block(x, cache=, padding_mask=, positions=)``), ``final_norm`` and
    ``out_head``. ``forward`` and ``new_cache`` behave as :class:`GPTModel`'s.
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

    def init_weights(self) -> None:
        """N(0, 0.02) linear/embedding weights, zero biases (what Hugging Face does for these models)."""
        self.apply(GPTModel._init_weights)
        if self.config.tie_weights:
            self.out_head.weight = self.tok_emb.weight

    def forward(
        self,
        idx: torch.Tensor,
        *,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t = idx.shape  # (b, t)
        past = self._past_length(t, cache)
        # RoPE positions: by default the cache offset onwards (computed by the attention);
        # with a padding mask, real tokens are counted so left padding does not shift them.
        positions = None
        if padding_mask is not None:
            positions = GPTModel._positions(b, t, past, padding_mask, idx.device)  # (b, t)
        x = self.drop_emb(self.tok_emb(idx))  # (b, t, emb_dim)
        for i, block in enumerate(self.trf_blocks):
            layer_cache = None if cache is None else cache.layer(i)
            x = block(x, cache=layer_cache, padding_mask=padding_mask, positions=positions)
        x = self.final_norm(x)
        return self._head(x, targets)  # (b, t, vocab_size), or the loss given targets
