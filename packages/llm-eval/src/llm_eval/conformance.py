"""Conformance checks for every registered evaluator (run by ``pytest --scratchlm-conformance``)."""

from __future__ import annotations

from typing import Any

from llm_core.conformance import check

__all__ = ["evaluator_declares_schema"]


@check("evaluators")
def evaluator_declares_schema(name: str, obj: Any) -> None:
    """An evaluator is callable and has a ``schema``: a non-empty set of top-level report keys (strings)."""
    assert callable(obj), f"evaluator '{name}': expected a callable, got {type(obj).__name__}"
    schema = getattr(obj, "schema", None)
    assert schema is not None, f"evaluator '{name}': has no `schema` attribute (the report's top-level keys)"
    assert isinstance(schema, (set, frozenset)), (
        f"evaluator '{name}': `schema` must be a set of key names, got {type(schema).__name__}"
    )
    assert schema, f"evaluator '{name}': `schema` is empty"
    assert all(isinstance(k, str) for k in schema), f"evaluator '{name}': `schema` keys must be strings"
