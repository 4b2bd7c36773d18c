"""Conformance checks for every registered attention backend (``pytest --scratchlm-conformance``).

A backend must agree with the ``naive`` reference (to 1e-5 in float32) on
plain, grouped-query, sliding-window, padded and cached-decoding inputs.
"""

from __future__ import annotations

from typing import Any

import torch

from llm_attention.backends import naive_attention
from llm_core.conformance import check

__all__ = ["matches_naive_reference"]

_CASES = {
    "causal": dict(h=4, h_kv=4, t_q=6, t_k=6),
    "grouped-query": dict(h=4, h_kv=2, t_q=6, t_k=6),
    "multi-query window": dict(h=4, h_kv=1, t_q=7, t_k=7, window=3),
    "decoding with a cache": dict(h=4, h_kv=2, t_q=2, t_k=7),
    "padding": dict(h=2, h_kv=2, t_q=5, t_k=5, padding=True),
}


@check("attention")
def matches_naive_reference(name: str, obj: Any) -> None:
    """The backend's output equals the naive reference's (dropout off)."""
    generator = torch.Generator().manual_seed(0)
    for label, case in _CASES.items():
        q = torch.randn(2, case["h"], case["t_q"], 8, generator=generator)
        k = torch.randn(2, case["h_kv"], case["t_k"], 8, generator=generator)
        v = torch.randn(2, case["h_kv"], case["t_k"], 8, generator=generator)
        mask = None
        if case.get("padding"):
            mask = torch.ones(2, case["t_k"], dtype=torch.bool)
            mask[0, :2] = False
        options: dict[str, Any] = dict(
            causal=True, mask=mask, dropout_p=0.0, window=case.get("window"), training=False
        )
        expected = naive_attention(q, k, v, **options)
        got = obj(q, k, v, **options)
        assert got.shape == expected.shape, f"attention '{name}' ({label}): shape {tuple(got.shape)}"
        error = (got - expected).abs().max().item()
        assert error <= 1e-5, (
            f"attention '{name}' ({label}): max difference {error:.2e} from the naive reference"
        )
