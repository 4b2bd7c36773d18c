"""The scratchlm hooks of scratchlm-rouge."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl

__all__ = ["register_evaluators"]


@hookimpl
def register_evaluators(register: Any) -> None:
    """``rouge``: ``scratchlm evaluate rouge --responses FILE``."""
    from scratchlm_rouge.rouge import rouge

    register("rouge", rouge, description="exact match and ROUGE-L F1 of instruction responses")
