"""The model configurations: dataclasses validated when they are created.

:class:`DecoderConfig` is the base of every built-in architecture's config
(:class:`GPTConfig` here, :class:`~llm_model.decoder.RotaryDecoderConfig` for
Llama, Mistral and Phi): the checks and properties of the fields they all have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from llm_attention.validation import divisors
from llm_core.errors import ConfigError

__all__ = ["INIT_SCHEMES", "DecoderConfig", "GPTConfig"]


def _choices(n: int, limit: int = 12) -> str:
    values = divisors(n)
    return ", ".join(map(str, values[:limit])) + (", …" if len(values) > limit else "")


#: Weight initialisations of :class:`GPTConfig` (``init``) and :func:`llm_model.init_weights`.
INIT_SCHEMES = ("gpt2", "pytorch")


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


class DecoderConfig:
    """The base of the decoder configs: checks and properties of the fields every one of them has.

    A subclass is a frozen dataclass declaring (at least) the fields annotated
    below, in its own order and with its own defaults (this base declares no
    dataclass field). Creating one checks them (:meth:`check_fields`, then the
    subclass's :meth:`check`, then the attention backend), each failure one
    :class:`ConfigError` naming the field and the valid choices.
    """

    #: Fields that must be positive integers.
    positive_fields: ClassVar[tuple[str, ...]] = (
        "vocab_size",
        "context_length",
        "emb_dim",
        "n_heads",
        "n_layers",
    )
    #: Fields that must be true or false.
    bool_fields: ClassVar[tuple[str, ...]] = ("tie_weights",)

    vocab_size: int
    context_length: int
    emb_dim: int
    n_heads: int
    n_layers: int
    n_kv_heads: int | None
    drop_rate: float
    tie_weights: bool
    attention: str

    def __post_init__(self) -> None:
        self.check_fields()
        self.check()
        _check_attention_backend(self.attention)

    def check_fields(self) -> None:
        """Check the shared fields: sizes, ``drop_rate``, flags, heads dividing the width."""
        for name in self.positive_fields:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        drop = self.drop_rate
        if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0.0 <= drop < 1.0:
            raise ConfigError(f"drop_rate: expected a number in [0, 1), got {drop!r}")
        for name in self.bool_fields:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.emb_dim % self.n_heads:
            raise ConfigError(
                f"n_heads={self.n_heads} does not divide emb_dim={self.emb_dim}; "
                f"choose n_heads from {_choices(self.emb_dim)}"
            )
        kv = self.n_kv_heads
        bad_kv = isinstance(kv, bool) or not isinstance(kv, int) or kv < 1 or self.n_heads % kv
        if kv is not None and bad_kv:
            raise ConfigError(
                f"n_kv_heads={kv!r} does not divide n_heads={self.n_heads}; "
                f"choose n_kv_heads from {_choices(self.n_heads)} or null"
            )

    def check(self) -> None:
        """The subclass's own checks (run after :meth:`check_fields`); nothing here."""

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


@dataclass(frozen=True)
class GPTConfig(DecoderConfig):
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

    bool_fields: ClassVar[tuple[str, ...]] = ("qkv_bias", "tie_weights")

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

    def check(self) -> None:
        """``init`` names a scheme of :func:`llm_model.init_weights`."""
        if self.init not in INIT_SCHEMES:
            raise ConfigError(f"init: expected one of {', '.join(INIT_SCHEMES)}, got {self.init!r}")
