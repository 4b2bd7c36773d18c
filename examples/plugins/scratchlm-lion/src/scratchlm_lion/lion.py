"""Lion: EvoLved Sign Momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

Each step: ``update = sign(beta1 * m + (1 - beta1) * g)``; ``p -= lr * (update + wd * p)``;
then ``m = beta2 * m + (1 - beta2) * g``. Every coordinate moves by exactly ``lr``, so Lion
wants a learning rate 3-10x smaller than AdamW's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Lion", "lion"]


class Lion(torch.optim.Optimizer):
    """The Lion optimizer over ``params`` (tensors or parameter-group dicts)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr={lr} must be > 0, for example 1e-4")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas={betas} must both be in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Lion update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                momentum = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled weight decay
                update = momentum.mul(beta1).add(p.grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-group["lr"])
                momentum.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss


def lion(
    groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float] = (0.9, 0.99), **kw: Any
) -> Lion:
    """The scratchlm optimizer factory: ``lion(param_groups, lr=...)`` (the Trainer's call)."""
    return Lion(groups, lr=lr, betas=betas, **kw)
