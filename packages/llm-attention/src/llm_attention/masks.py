"""Attention masks: causal, sliding-window and padding, as boolean tensors.

Convention (the same as ``torch.nn.functional.scaled_dot_product_attention``):
``True`` means "this query may attend to this key". The book builds the
opposite mask (``torch.triu(..., diagonal=1)``, True = hidden); ``book.py``
keeps that form, everything else uses this one.

Queries are aligned to the *end* of the keys: with ``t_q`` queries and ``t_k``
keys, query ``i`` sits at absolute position ``t_k - t_q + i``. That is what
decoding with a KV cache needs (the new tokens are the last ones).
"""

from __future__ import annotations

import torch
from torch import Tensor

from llm_core.errors import ConfigError

__all__ = ["attention_mask", "causal_mask"]


def causal_mask(
    t_q: int,
    t_k: int | None = None,
    *,
    window: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Boolean ``(t_q, t_k)`` mask, True where query ``i`` may attend key ``j``.

    Query ``i`` is at position ``p = t_k - t_q + i`` and sees keys ``j <= p``;
    with ``window=w`` only the last ``w`` of them: ``p - w < j <= p``.
    """
    t_k = t_q if t_k is None else t_k
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ConfigError(f"window must be a positive integer or None, got {window!r}")
    query_pos = torch.arange(t_k - t_q, t_k, device=device)[:, None]  # (t_q, 1)
    key_pos = torch.arange(t_k, device=device)[None, :]  # (1, t_k)
    allowed = key_pos <= query_pos  # (t_q, t_k)
    if window is not None:
        allowed &= key_pos > query_pos - window
    return allowed


def attention_mask(
    t_q: int,
    t_k: int,
    *,
    causal: bool = True,
    window: int | None = None,
    padding_mask: Tensor | None = None,
    device: torch.device | str | None = None,
) -> Tensor | None:
    """The combined boolean mask ``(b or 1, 1, t_q, t_k)``, or None when nothing is hidden.

    ``padding_mask`` is a boolean ``(b, t_k)`` tensor, True for real tokens and
    False for padding; padded keys are hidden from every query.
    """
    if window is not None and not causal:
        raise ConfigError("window requires causal=True (sliding-window attention is causal)")
    mask: Tensor | None = None
    if causal and (t_q > 1 or window is not None or t_q > t_k):
        mask = causal_mask(t_q, t_k, window=window, device=device)[None, None]  # (1, 1, t_q, t_k)
    if padding_mask is not None:
        if padding_mask.dtype != torch.bool or padding_mask.dim() != 2 or padding_mask.shape[-1] != t_k:
            raise ConfigError(
                f"padding_mask must be a bool tensor (batch, {t_k}) with True for real tokens, "
                f"got {padding_mask.dtype} {tuple(padding_mask.shape)}"
            )
        keys = padding_mask[:, None, None, :].to(device)  # (b, 1, 1, t_k)
        mask = keys if mask is None else mask & keys  # (b, 1, t_q, t_k)
    return mask
