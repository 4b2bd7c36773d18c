"""llm-attention: attention from the book's first steps to fused kernels.

Masks, attention backends (``naive`` reference and ``sdpa``) behind one
interface, grouped-query and sliding-window attention, rotary position
embeddings, a pre-allocated KV cache, and the :class:`MultiHeadAttention`
module the models use. ``llm_attention.book`` keeps chapter 3's progression.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, lazy_exports

__version__ = distribution_version("llm-attention")

#: Public name -> submodule defining it; imported on first use (no torch for `scratchlm --help`).
_EXPORTS = {
    "BookMultiHeadAttention": "book",
    "CausalAttention": "book",
    "KVCache": "kv_cache",
    "LayerKVCache": "kv_cache",
    "MultiHeadAttention": "multihead",
    "MultiHeadAttentionWrapper": "book",
    "RotaryEmbedding": "rope",
    "SCALING_TYPES": "rope",
    "SelfAttentionV1": "book",
    "SelfAttentionV2": "book",
    "apply_rotary": "rope",
    "attention": "backends",
    "attention_mask": "masks",
    "causal_mask": "masks",
    "get_backend": "backends",
    "naive_attention": "backends",
    "repeat_kv": "backends",
    "rotate_half": "rope",
    "sdpa_attention": "backends",
    "simplified_self_attention": "book",
}

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
