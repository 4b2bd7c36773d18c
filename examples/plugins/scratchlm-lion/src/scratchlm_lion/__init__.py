"""scratchlm-lion: the Lion optimizer as a scratchlm plugin."""

from __future__ import annotations

from scratchlm_lion.lion import Lion, lion

__all__ = ["Lion", "lion"]
