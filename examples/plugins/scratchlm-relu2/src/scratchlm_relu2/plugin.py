"""The scratchlm hooks of scratchlm-relu2."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl

__all__ = ["register_architectures"]


@hookimpl
def register_architectures(register: Any) -> None:
    """``gpt2-relu2``, with llm_model's presets (tiny, small, gpt2-124m …)."""
    from llm_model import PRESETS
    from scratchlm_relu2.model import ReLU2GPT

    register(
        "gpt2-relu2",
        ReLU2GPT,
        presets={name: dict(values) for name, values in PRESETS.items()},
        description="GPT-2 with a ReLU² feed-forward and QK-norm",
    )
