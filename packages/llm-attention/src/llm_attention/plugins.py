"""llm-attention's built-in plugin: what this package registers through the scratchlm hooks."""

from __future__ import annotations

__all__: list[str] = []
