"""The GPT model configuration: one dataclass, validated when it is created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_core.errors import ConfigError

__all__ = ["GPTConfig"]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _choices(n: int, limit: int = 12) -> str:
    divisors = _divisors(n)
    shown = ", ".join(map(str, divisors[:limit]))
    return shown + (", …" if len(divisors) > limit else "")


#: Weight initialisations of :class:`GPTConfig` (``init``).
INIT_SCHEMES = ("gpt2", "pytorch")


@dataclass(frozen=True)
class GPTConfig:
    """Hyperparameters of a GPT-2 style model (the book's ``GPT_CONFIG_124M`` dict, typed).

    Attributes:
        vocab_size: number of token ids (50257 for GPT-2 BPE).
        context_length: the longest sequence the position embedding covers.
        emb_dim: width of the residual stream.
        n_heads: attention heads per layer; must divide ``emb_dim``.
        n_layers: number of transformer blocks.
        drop_rate: dropout on embeddings, attention weights and both shortcuts.
        qkv_bias: whether the query/key/value projections have a bias
            (``False`` in the book's 124M example, ``True`` for OpenAI's weights).
        tie_weights: share the output head's weight with the token embedding.
        attention: name of a registered attention backend (``"naive"``, ``"sdpa"``, …).
        n_kv_heads: key/value heads for grouped-query attention (``None``: ``n_heads``).
        init: ``"gpt2"``: GPT-2's initialisation (N(0, 0.02), residual projections
            scaled by 1/sqrt(2 n_layers)), what real pretraining wants; ``"pytorch"``:
            torch's own layer defaults (embeddings N(0, 1)), as the book's chapter-4
            model, which its chapter-5 run on one short story relies on to memorise.
    """

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_weights: bool = False
    attention: str = "sdpa"
    n_kv_heads: int | None = None
    init: str = "gpt2"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(self.drop_rate, bool) or not isinstance(self.drop_rate, (int, float)):
            raise ConfigError(f"drop_rate: expected a number in [0, 1), got {self.drop_rate!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"drop_rate: expected a number in [0, 1), got {self.drop_rate!r}")
        for name in ("qkv_bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.emb_dim % self.n_heads:
            raise ConfigError(
                f"n_heads={self.n_heads} does not divide emb_dim={self.emb_dim}; "
                f"choose n_heads from {_choices(self.emb_dim)}"
            )
        if self.n_kv_heads is not None:
            kv = self.n_kv_heads
            if isinstance(kv, bool) or not isinstance(kv, int) or kv < 1 or self.n_heads % kv:
                raise ConfigError(
                    f"n_kv_heads={kv!r} does not divide n_heads={self.n_heads}; "
                    f"choose n_kv_heads from {_choices(self.n_heads)} or null"
                )
        if self.init not in INIT_SCHEMES:
            raise ConfigError(f"init: expected one of {', '.join(INIT_SCHEMES)}, got {self.init!r}")
        if not isinstance(self.attention, str) or not self.attention:
            raise ConfigError(f"attention: expected a backend name such as 'sdpa', got {self.attention!r}")
        self._check_attention_backend()

    def _check_attention_backend(self) -> None:
        from llm_core import get_registry

        backends = get_registry("attention")
        if len(backends) and self.attention not in backends:
            raise ConfigError(
                f"attention: unknown backend '{self.attention}'; "
                f"choose from {', '.join(backends)} (or install the plugin that provides it)"
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``emb_dim // n_heads``."""
        return self.emb_dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used (``n_kv_heads`` or ``n_heads``)."""
        return self.n_kv_heads or self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """The hyperparameters as a JSON-serialisable dict (the keys of ``config.json``)."""
        from llm_core.config_io import config_to_dict

        return config_to_dict(self)
