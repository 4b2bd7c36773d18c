"""The scratchlm hooks of scratchlm-lion."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl

__all__ = ["register_optimizers"]


@hookimpl
def register_optimizers(register: Any) -> None:
    """``lion``."""
    from scratchlm_lion.lion import lion

    register("lion", lion, description="Lion, sign momentum (Chen et al., 2023); use a 3-10x smaller lr")
