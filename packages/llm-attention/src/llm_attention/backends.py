"""Attention backends behind one interface, looked up by name in the attention registry.

Every backend is a callable::

    backend(q, k, v, *, causal, mask, dropout_p, window, training, scale=None) -> Tensor

with ``q`` of shape ``(b, n_heads, t_q, head_dim)``, ``k``/``v`` of shape
``(b, n_kv_heads, t_k, head_dim)`` (``n_kv_heads`` divides ``n_heads``:
grouped-query attention, ``n_kv_heads=1`` is multi-query attention), and
``mask`` a boolean padding mask ``(b, t_k)`` (True = real token) or None. The
queries are the *last* ``t_q`` positions of the ``t_k`` keys (decoding with a
cache). Rows in which every key is hidden return zeros, never NaN.

Built-ins: ``naive`` (explicit scores, mask, softmax, dropout: the reference)
and ``sdpa`` (:func:`torch.nn.functional.scaled_dot_product_attention`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from llm_attention.masks import attention_mask
from llm_attention.validation import check_kv_heads
from llm_core import get_registry
from llm_core.errors import ConfigError

__all__ = ["attention", "get_backend", "naive_attention", "repeat_kv", "sdpa_attention"]

AttentionBackend = Callable[..., Tensor]


def get_backend(name: str) -> AttentionBackend:
    """The attention backend registered as ``name`` (an unknown name lists the available ones)."""
    if not isinstance(name, str):
        raise ConfigError(f"backend must be the name of a registered attention backend, got {name!r}")
    return get_registry("attention")[name].obj


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    backend: str = "sdpa",
    causal: bool = True,
    padding_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    window: int | None = None,
    training: bool = False,
    scale: float | None = None,
) -> Tensor:
    """Attend ``q`` ``(b, n_heads, t_q, hd)`` over ``k``/``v`` ``(b, n_kv_heads, t_k, hd)``.

    Returns ``(b, n_heads, t_q, hd)``. ``backend`` names a registered backend
    (``"naive"``, ``"sdpa"`` or a plugin's); ``padding_mask`` is bool ``(b, t_k)``
    with True for real tokens; ``window=w`` limits each query to its last ``w``
    keys (itself included); dropout applies only when ``training`` is true;
    ``scale`` defaults to ``1 / sqrt(hd)``.
    """
    function = get_backend(backend)
    options: dict[str, Any] = {"scale": scale} if scale is not None else {}
    return function(
        q,
        k,
        v,
        causal=causal,
        mask=padding_mask,
        dropout_p=dropout_p,
        window=window,
        training=training,
        **options,
    )


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Repeat each key/value head ``n_rep`` times: ``(b, n_kv, t, hd) -> (b, n_kv * n_rep, t, hd)``.

    Query head ``h`` then uses key/value head ``h // n_rep`` (the layout of
    Llama, Hugging Face and SDPA's ``enable_gqa``).
    """
    if n_rep == 1:
        return x
    return x.repeat_interleave(n_rep, dim=1)


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> int:
    """Validate shapes; return how many query heads share one key/value head."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ConfigError(
            "attention expects q (b, n_heads, t_q, head_dim) and k/v (b, n_kv_heads, t_k, head_dim), "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ConfigError(
            "k and v must have the same shape and share batch and head_dim with q; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    check_kv_heads(q.shape[1], k.shape[1])
    if not 0.0 <= dropout_p < 1.0:
        raise ConfigError(f"dropout_p must be a probability in [0, 1), got {dropout_p!r}")
    return q.shape[1] // k.shape[1]


def _mask_and_empty_rows(
    q: Tensor, k: Tensor, causal: bool, mask: Tensor | None, window: int | None
) -> tuple[Tensor | None, Tensor | None]:
    """The boolean mask with fully hidden rows opened up, and those rows (to zero them afterwards)."""
    allowed = attention_mask(
        q.shape[-2], k.shape[-2], causal=causal, window=window, padding_mask=mask, device=q.device
    )
    if allowed is None:
        return None, None
    empty = ~allowed.any(dim=-1, keepdim=True)  # (b|1, 1, t_q, 1): queries that see no key
    return allowed | empty, empty


def naive_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = True,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    window: int | None = None,
    training: bool = False,
    scale: float | None = None,
) -> Tensor:
    """The reference: explicit scores, mask with -inf, softmax (in fp32), dropout, weighted sum."""
    n_rep = _check_inputs(q, k, v, dropout_p)
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (b, n_heads, t_k, hd)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (b, n_heads, t_q, t_k)
    allowed, empty = _mask_and_empty_rows(q, k, causal, mask, window)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)  # (b, n_heads, t_q, t_k)
    weights = F.dropout(weights, p=dropout_p, training=training)
    out = weights @ v  # (b, n_heads, t_q, hd)
    if empty is not None:
        out = out.masked_fill(empty, 0.0)
    return out


_SDPA_HAS_GQA: bool | None = None


def _sdpa_supports_gqa() -> bool:
    """Whether this torch's SDPA takes ``enable_gqa`` (torch >= 2.5); probed once."""
    global _SDPA_HAS_GQA
    if _SDPA_HAS_GQA is None:
        probe = torch.zeros(1, 2, 1, 2)
        try:
            F.scaled_dot_product_attention(probe, probe[:, :1], probe[:, :1], enable_gqa=True)
            _SDPA_HAS_GQA = True
        except (TypeError, RuntimeError):
            _SDPA_HAS_GQA = False
    return _SDPA_HAS_GQA


def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = True,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    window: int | None = None,
    training: bool = False,
    scale: float | None = None,
) -> Tensor:
    """PyTorch's fused ``scaled_dot_product_attention`` (flash / memory-efficient kernels when possible)."""
    n_rep = _check_inputs(q, k, v, dropout_p)
    options: dict[str, Any] = {"dropout_p": dropout_p if training else 0.0, "scale": scale}
    if n_rep > 1:
        if _sdpa_supports_gqa():
            options["enable_gqa"] = True
        else:  # pragma: no cover - torch < 2.5
            k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (b, n_heads, t_k, hd)
    t_q, t_k = q.shape[-2], k.shape[-2]
    if causal and window is None and mask is None and t_q == t_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, **options)  # (b, n_heads, t_q, hd)
    if causal and window is None and mask is None and t_q == 1:  # one decoding step: it sees every key
        return F.scaled_dot_product_attention(q, k, v, **options)  # (b, n_heads, 1, hd)
    allowed, empty = _mask_and_empty_rows(q, k, causal, mask, window)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, **options)  # (b, n_heads, t_q, hd)
    if empty is not None:
        out = out.masked_fill(empty, 0.0)
    return out
