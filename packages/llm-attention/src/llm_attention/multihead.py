"""The multi-head attention module the models use.

The book's ``MultiHeadAttention`` (same submodule names: ``W_query``,
``W_key``, ``W_value``, ``out_proj``), extended with:

* a pluggable backend (``"naive"``, ``"sdpa"`` or a plugin's), looked up in
  the attention registry;
* grouped-query attention (``n_kv_heads`` key/value heads shared by
  ``n_heads`` query heads; ``n_kv_heads=1`` is multi-query attention);
* sliding-window causal attention (``window``);
* rotary position embeddings (``rope``);
* a KV cache for incremental decoding, and padding masks.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from llm_attention.backends import get_backend
from llm_attention.kv_cache import LayerKVCache
from llm_attention.rope import RotaryEmbedding
from llm_attention.validation import check_dropout, check_heads, check_positive
from llm_core.errors import ConfigError

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention.

    Args:
        d_in: input features.
        d_out: output features, split over ``n_heads`` heads of ``d_out // n_heads``.
        n_heads: query heads; must divide ``d_out``.
        context_length: the longest sequence (cached tokens included).
        dropout: dropout on the attention weights, in training mode only.
        qkv_bias: bias in the query/key/value projections.
        n_kv_heads: key/value heads (default ``n_heads``); must divide ``n_heads``.
        backend: name of a registered attention backend.
        window: sliding-window size (each token sees itself and the ``window - 1`` before it).
        rope: rotary embeddings for ``head_dim`` features, or None (positions come from elsewhere).
        out_bias: bias in ``out_proj``.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        n_heads: int,
        *,
        context_length: int,
        dropout: float = 0.0,
        qkv_bias: bool = False,
        n_kv_heads: int | None = None,
        backend: str = "sdpa",
        window: int | None = None,
        rope: RotaryEmbedding | None = None,
        out_bias: bool = True,
    ) -> None:
        super().__init__()
        check_positive("d_in", d_in)
        self.n_kv_heads = check_heads(d_out, n_heads, n_kv_heads)
        self.context_length = check_positive("context_length", context_length)
        self.dropout_p = check_dropout(dropout)
        if window is not None:
            check_positive("window", window)
        self.d_out = d_out
        self.n_heads = n_heads
        self.head_dim = d_out // n_heads
        self.window = window
        if rope is not None and rope.head_dim != self.head_dim:
            raise ConfigError(
                f"rope was built for head_dim={rope.head_dim} but d_out={d_out} / n_heads={n_heads} "
                f"gives head_dim={self.head_dim}; build RotaryEmbedding({self.head_dim}, ...)"
            )
        self.backend = backend
        self._attend = get_backend(backend)  # unknown names fail here, listing the registered ones

        kv_dim = self.n_kv_heads * self.head_dim
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, kv_dim, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, kv_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out, bias=out_bias)
        self.rope = rope

    def forward(
        self,
        x: Tensor,
        *,
        cache: LayerKVCache | None = None,
        padding_mask: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``(b, t, d_in)`` -> ``(b, t, d_out)``.

        With ``cache``, this call's keys/values are appended to it and the
        queries attend over everything cached; their positions start at the
        cache's length (for RoPE and the causal mask). ``padding_mask`` is bool
        ``(b, t_k)``, True for real tokens, covering every attended key
        (``t_k`` = cached + new tokens). ``positions`` ``(t,)`` or ``(b, t)``
        overrides the RoPE positions (default ``offset … offset + t - 1``), for
        example to count only real tokens in left-padded rows.
        """
        b, t, _ = x.shape
        offset = cache.length if cache is not None else 0
        if offset + t > self.context_length:
            raise ConfigError(
                f"{offset + t} tokens ({offset} cached + {t} new) exceed context_length={self.context_length}"
            )
        q = self.W_query(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (b, n_heads, t, hd)
        k = self.W_key(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (b, n_kv, t, hd)
        v = self.W_value(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (b, n_kv, t, hd)
        if self.rope is not None and positions is not None:
            q, k = self.rope.rotate(q, k, positions)
        elif self.rope is not None:
            q, k = self.rope(q, offset), self.rope(k, offset)
        if cache is not None:
            k, v = cache.update(k, v)  # (b, n_kv, offset + t, hd)
        context = self._attend(
            q,
            k,
            v,
            causal=True,
            mask=padding_mask,
            dropout_p=self.dropout_p,
            window=self.window,
            training=self.training,
        )  # (b, n_heads, t, hd)
        context = context.transpose(1, 2).contiguous().view(b, t, self.d_out)  # (b, t, d_out)
        return self.out_proj(context)

    def extra_repr(self) -> str:
        extras: dict[str, Any] = {
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "backend": self.backend,
            "window": self.window,
            "dropout": self.dropout_p,
        }
        return ", ".join(f"{k}={v}" for k, v in extras.items())
