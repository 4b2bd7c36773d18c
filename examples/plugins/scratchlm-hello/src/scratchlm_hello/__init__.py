"""scratchlm-hello: the smallest scratchlm command plugin."""

from __future__ import annotations

__all__: list[str] = []
