"""Chapter 3 of the book, step by step: from plain dot products to multi-head attention.

Each step is kept as the book writes it, so it can be read next to the text:

1. :func:`simplified_self_attention` — no trainable weights: scores are dot
   products of the inputs, weights their softmax, context vectors the
   weighted sums (section 3.3).
2. :class:`SelfAttentionV1` — trainable query/key/value matrices as
   ``nn.Parameter`` and scaled dot-product attention (3.4).
3. :class:`SelfAttentionV2` — the same with ``nn.Linear`` layers (3.4.2).
4. :class:`CausalAttention` — a causal mask and dropout, batched (3.5).
5. :class:`MultiHeadAttentionWrapper` — several causal heads side by side (3.6.1).
6. :class:`BookMultiHeadAttention` — the book's ``MultiHeadAttention``: one
   projection split into heads, plus an output projection (3.6.2).

The production module is :class:`llm_attention.MultiHeadAttention`, which adds
backends, grouped-query attention, RoPE and a KV cache, and is tested against
these classes. Masks here follow the book: ``True`` (or 1) marks a *hidden* key.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llm_attention.validation import check_dropout, check_heads, check_positive

__all__ = [
    "BookMultiHeadAttention",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "SelfAttentionV1",
    "SelfAttentionV2",
    "simplified_self_attention",
]


def simplified_self_attention(inputs: Tensor) -> Tensor:
    """Context vectors of ``inputs`` ``(t, d)`` with no trainable weights (section 3.3).

    ``scores[i, j] = inputs[i] · inputs[j]``; each row is softmax-normalised
    and used to average the inputs. Returns ``(t, d)``.
    """
    attn_scores = inputs @ inputs.T  # (t, t)
    attn_weights = torch.softmax(attn_scores, dim=-1)  # (t, t), rows sum to 1
    return attn_weights @ inputs  # (t, d)


class SelfAttentionV1(nn.Module):
    """Scaled dot-product self-attention with ``nn.Parameter`` weight matrices ``(d_in, d_out)``."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(t, d_in)`` -> context vectors ``(t, d_out)``."""
        keys = x @ self.W_key  # (t, d_out)
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T  # (t, t)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values  # (t, d_out)


class SelfAttentionV2(nn.Module):
    """:class:`SelfAttentionV1` with ``nn.Linear`` projections (better initialisation, optional bias)."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(t, d_in)`` -> context vectors ``(t, d_out)``."""
        keys = self.W_key(x)  # (t, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.T  # (t, t)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values  # (t, d_out)


class CausalAttention(nn.Module):
    """Single-head causal self-attention over batches, with dropout on the attention weights."""

    mask: Tensor

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        check_positive("context_length", context_length)
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(check_dropout(dropout))
        # 1 above the diagonal: token i must not see tokens j > i.
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(b, t, d_in)`` -> ``(b, t, d_out)``."""
        _, num_tokens, _ = x.shape
        keys = self.W_key(x)  # (b, t, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.transpose(1, 2)  # (b, t, t)
        attn_scores = attn_scores.masked_fill(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values  # (b, t, d_out)


class MultiHeadAttentionWrapper(nn.Module):
    """``num_heads`` independent :class:`CausalAttention` heads, outputs concatenated.

    The output has ``num_heads * d_out`` features (``d_out`` is per head).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        check_positive("num_heads", num_heads)
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(b, t, d_in)`` -> ``(b, t, num_heads * d_out)``."""
        return torch.cat([head(x) for head in self.heads], dim=-1)


class BookMultiHeadAttention(nn.Module):
    """The book's ``MultiHeadAttention``: one projection per Q/K/V split into heads, then ``out_proj``.

    Equivalent to :class:`MultiHeadAttentionWrapper` with ``d_out // num_heads``
    features per head when the weights match and ``out_proj`` is the identity.
    """

    mask: Tensor

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        check_heads(d_out, num_heads)
        check_positive("context_length", context_length)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # combines the heads' outputs
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(b, t, d_in)`` -> ``(b, t, d_out)``."""
        b, num_tokens, _ = x.shape
        keys = self.W_key(x)  # (b, t, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)

        # Split the last dimension into heads, then put heads before tokens.
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)  # (b, h, t, hd)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, h, t, t)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores = attn_scores.masked_fill(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)  # (b, t, h, hd)
        context = context.contiguous().view(b, num_tokens, self.d_out)  # (b, t, d_out)
        return self.out_proj(context)
