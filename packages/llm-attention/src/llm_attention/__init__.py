"""llm-attention: attention from the book's first steps to fused kernels.

Masks, attention backends (``naive`` reference and ``sdpa``) behind one
interface, grouped-query and sliding-window attention, rotary position
embeddings, a pre-allocated KV cache, and the :class:`MultiHeadAttention`
module the models use. ``llm_attention.book`` keeps chapter 3's progression.
"""

from __future__ import annotations

from llm_core.exports import distribution_version, export_table, lazy_exports

__version__ = distribution_version("llm-attention")

#: Submodule: the public names it defines, imported on first use (no torch for `scratchlm --help`).
_EXPORTS = export_table(
    """
    backends: attention get_backend naive_attention repeat_kv sdpa_attention
    book: BookMultiHeadAttention CausalAttention MultiHeadAttentionWrapper SelfAttentionV1
          SelfAttentionV2 simplified_self_attention
    kv_cache: KVCache LayerKVCache
    masks: attention_mask causal_mask
    multihead: MultiHeadAttention
    rope: RotaryEmbedding SCALING_TYPES apply_rotary rotate_half
    """
)

__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
