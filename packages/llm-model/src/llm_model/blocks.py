"""The building blocks of a GPT model, as in chapter 4 of the book, and the block contract.

``LayerNorm`` and ``GELU`` are the book's classes with the book's parameter
names; their forward passes call torch's fused kernels, which compute the
book's formulas (written out in the docstrings and tested against them to
1e-6) in one pass instead of six, and save less for backward. Attention comes
from :mod:`llm_attention`.

:class:`Block` is the contract every transformer block follows (GPT-2's
:class:`TransformerBlock`, :class:`~llm_model.LlamaBlock`,
:class:`~llm_model.PhiBlock`, and a plugin's own): one ``forward`` signature
and the names of its parts. It is what ``docs/plugins.md`` ("Write your own
block") documents and what the conformance suite checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from llm_attention import LayerKVCache, MultiHeadAttention, RotaryEmbedding
from llm_model.config import GPTConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "GELU",
    "Block",
    "BlockInputs",
    "FeedForward",
    "LayerNorm",
    "TransformerBlock",
    "causal_self_attention",
]


class BlockInputs(TypedDict, total=False):
    """The keyword arguments of every block's ``forward``, all optional (see :class:`Block`).

    :class:`llm_attention.MultiHeadAttention` takes the same three, so a block
    passes them on as they are: ``self.att(h, **inputs)``.
    """

    cache: LayerKVCache | None
    padding_mask: torch.Tensor | None
    positions: torch.Tensor | None


class Block(nn.Module):
    """The transformer block contract: ``(b, t, emb_dim)`` in, the same shape out, one signature.

    ``forward(x, *, cache=None, padding_mask=None, positions=None)``, typed as
    ``forward(self, x: Tensor, **inputs: Unpack[BlockInputs]) -> Tensor``. A model
    keeps its blocks in ``trf_blocks`` (an ``nn.ModuleList``) and calls each one
    as ``block(x, cache=..., padding_mask=..., positions=...)``; the built-in
    models (:class:`~llm_model.GPTModel` and the rotary decoders) do exactly
    that, so a new block drops into them. The keyword arguments
    (:class:`BlockInputs`), all optional, are what the block passes on to its
    attention (:class:`llm_attention.MultiHeadAttention` takes the same three):

    * ``cache``: this layer's :class:`llm_attention.LayerKVCache` (``model.new_cache(b)``
      then ``cache.layer(i)``), or ``None``. The attention appends this call's
      keys and values to it and attends over everything cached.
    * ``padding_mask``: bool ``(b, t_past + t)``, true for real tokens and false
      for (left) padding, covering the cached tokens too; ``None``: no padding.
    * ``positions``: the new tokens' positions ``(t,)`` or ``(b, t)`` for rotary
      embeddings, counting real tokens only in padded rows; ``None``: the cache
      offset onwards. Blocks whose attention has no RoPE ignore it.

    The names of the parts (what LoRA targets, weight import/export and
    :func:`~llm_model.init_weights` look for):

    * ``att``: the self-attention, a :class:`~llm_attention.MultiHeadAttention`
      (``W_query``, ``W_key``, ``W_value``, ``out_proj``); build it with
      :func:`causal_self_attention`.
    * ``ff``: the feed-forward network.
    * ``norm1``/``norm2``: the norms before ``att`` and ``ff`` (sequential blocks),
      or ``norm``: the one norm both read (parallel blocks, as Phi's).
    * ``residual_projections``: a class attribute, the module paths (relative
      to the block) of the layers whose output is added to the residual stream,
      e.g. ``("att.out_proj", "ff.layers.2")``; GPT-2's initialisation scales
      them by ``1 / sqrt(2 * n_layers)``.

    Subclasses implement ``forward`` with this signature (or spell the three
    keywords out); the conformance suite checks that every block accepts them.
    """

    residual_projections: ClassVar[tuple[str, ...]] = ()
    att: nn.Module
    ff: nn.Module

    def forward(self, x: torch.Tensor, **inputs: Unpack[BlockInputs]) -> torch.Tensor:
        """``x`` ``(b, t, emb_dim)`` -> ``(b, t, emb_dim)``; see the class docstring for the arguments."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward(x, *, cache, padding_mask, positions)"
        )


def causal_self_attention(
    config: Any,
    *,
    qkv_bias: bool,
    out_bias: bool = True,
    rope: RotaryEmbedding | None = None,
    window: int | None = None,
) -> MultiHeadAttention:
    """The ``att`` of a block: causal self-attention shaped by ``config``.

    Reads ``config.emb_dim``, ``n_heads``, ``n_kv_heads``, ``context_length``,
    ``drop_rate`` (dropout on the attention weights) and ``attention`` (the
    backend's registered name).
    """
    return MultiHeadAttention(
        config.emb_dim,
        config.emb_dim,
        config.n_heads,
        context_length=config.context_length,
        dropout=config.drop_rate,
        qkv_bias=qkv_bias,
        n_kv_heads=config.n_kv_heads,
        backend=config.attention,
        window=window,
        rope=rope,
        out_bias=out_bias,
    )


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


class TransformerBlock(Block):
    """GPT-2's pre-LayerNorm block: ``x + drop(att(norm1(x)))`` then ``x + drop(ff(norm2(x)))``."""

    residual_projections = ("att.out_proj", "ff.layers.2")

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.att = causal_self_attention(config, qkv_bias=config.qkv_bias)
        self.ff = FeedForward(config)
        self.norm1 = LayerNorm(config.emb_dim)
        self.norm2 = LayerNorm(config.emb_dim)
        self.drop_shortcut = nn.Dropout(config.drop_rate)

    def forward(self, x: torch.Tensor, **inputs: Unpack[BlockInputs]) -> torch.Tensor:
        # x: (b, t, emb_dim) throughout
        shortcut = x
        x = self.att(self.norm1(x), **inputs)
        x = self.drop_shortcut(x) + shortcut

        shortcut = x
        x = self.ff(self.norm2(x))
        return self.drop_shortcut(x) + shortcut
