"""The scratchlm hooks of scratchlm-parallel."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl

__all__ = ["register_architectures"]


@hookimpl
def register_architectures(register: Any) -> None:
    """``gpt2-parallel``, with llm_model's GPT-2 presets (tiny, small, gpt2-124m …)."""
    from llm_model import PRESETS
    from scratchlm_parallel.model import ParallelGPT

    register(
        "gpt2-parallel",
        ParallelGPT,
        presets={name: dict(values) for name, values in PRESETS.items()},
        description="GPT-2 with parallel attention + MLP blocks (GPT-J, PaLM)",
    )
