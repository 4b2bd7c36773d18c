"""Learning-rate schedules: multipliers of the base learning rate by optimizer step.

A schedule is a pure function of the step, so resuming needs only the step.
"""

from __future__ import annotations

import math

from llm_core import get_registry

__all__ = ["constant", "lr_multiplier", "warmup_cosine", "wsd"]


def constant(step: int, *, max_steps: int, warmup_steps: int = 0, **_: float) -> float:
    """1.0, after an optional linear warmup."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


def warmup_cosine(
    step: int, *, max_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.1, **_: float
) -> float:
    """Linear warmup then cosine decay to ``min_lr_ratio`` (the book's appendix D)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def wsd(
    step: int,
    *,
    max_steps: int,
    warmup_steps: int = 0,
    decay_fraction: float = 0.2,
    min_lr_ratio: float = 0.0,
    **_: float,
) -> float:
    """Warmup-stable-decay: linear warmup, constant, then linear decay over the last ``decay_fraction``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_start = max_steps - int(decay_fraction * max_steps)
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, max_steps - decay_start))
    return 1.0 - (1.0 - min_lr_ratio) * progress


def lr_multiplier(name: str, step: int, *, max_steps: int, **options: float) -> float:
    """The multiplier of schedule ``name`` (looked up in the registry) at ``step``."""
    return float(get_registry("schedulers").get_obj(name)(step, max_steps=max_steps, **options))
