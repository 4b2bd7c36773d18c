"""llm-attention: attention from the book's first steps to fused kernels.

Masks, attention backends (``naive`` reference and ``sdpa``) behind one
interface, grouped-query and sliding-window attention, rotary position
embeddings, a pre-allocated KV cache, and the :class:`MultiHeadAttention`
module the models use. ``llm_attention.book`` keeps chapter 3's progression.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from llm_attention.backends import attention, get_backend, naive_attention, repeat_kv, sdpa_attention
from llm_attention.book import (
    BookMultiHeadAttention,
    CausalAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    simplified_self_attention,
)
from llm_attention.kv_cache import KVCache, LayerKVCache
from llm_attention.masks import attention_mask, causal_mask
from llm_attention.multihead import MultiHeadAttention
from llm_attention.rope import SCALING_TYPES, RotaryEmbedding, apply_rotary, rotate_half

try:
    __version__ = version("llm-attention")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "SCALING_TYPES",
    "BookMultiHeadAttention",
    "CausalAttention",
    "KVCache",
    "LayerKVCache",
    "MultiHeadAttention",
    "MultiHeadAttentionWrapper",
    "RotaryEmbedding",
    "SelfAttentionV1",
    "SelfAttentionV2",
    "__version__",
    "apply_rotary",
    "attention",
    "attention_mask",
    "causal_mask",
    "get_backend",
    "naive_attention",
    "repeat_kv",
    "rotate_half",
    "sdpa_attention",
    "simplified_self_attention",
]
