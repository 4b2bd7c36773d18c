"""scratchlm-parallel: GPT-2 with GPT-J/PaLM-style parallel attention + MLP blocks, a scratchlm plugin."""

from __future__ import annotations

from scratchlm_parallel.model import ParallelBlock, ParallelGPT

__all__ = ["ParallelBlock", "ParallelGPT"]
