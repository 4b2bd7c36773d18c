"""llm-attention's built-in plugin: the ``naive`` and ``sdpa`` attention backends."""

from __future__ import annotations

from llm_core import hookimpl
from llm_core.hookspecs import Register

__all__ = ["register_attention"]


@hookimpl
def register_attention(register: Register) -> None:
    """Register the reference backend ``naive`` and the fused backend ``sdpa``."""
    from llm_attention.backends import naive_attention, sdpa_attention  # torch: only when attention is used

    register(
        "naive",
        naive_attention,
        description="explicit scores, mask, softmax and dropout: the readable reference",
    )
    register(
        "sdpa",
        sdpa_attention,
        description="torch.nn.functional.scaled_dot_product_attention (fused kernels)",
    )
