"""Conformance checks that train (run by ``pytest -p llm_core.testing``).

* every architecture: a few optimizer steps on one tiny batch lower its
  next-token loss (the model can learn: gradients, parameter groups and the
  optimizer all connect);
* every optimizer: it lowers the loss of a toy linear regression when built
  the way the Trainer builds it, ``obj(param_groups, lr=...)``.

An optimizer whose good learning rate is far from 1e-2 (for the toy problem)
can say so with the registration meta ``conformance_lr=...``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from llm_core import get_registry
from llm_core.conformance import check

__all__ = ["optimizer_fits_a_toy_regression", "training_steps_lower_the_loss"]

ARCH_STEPS = 8
ARCH_LR = 3e-3
TOY_STEPS = 60
TOY_LR = 1e-2


@check("architectures")
def training_steps_lower_the_loss(name: str, obj: Any) -> None:
    """A few AdamW steps on one tiny batch lower the next-token loss."""
    from llm_model.conformance import tiny_instance
    from llm_train.optimizers import build_optimizer
    from llm_train.tasks import next_token_loss

    model = tiny_instance(name, obj).train()
    generator = torch.Generator().manual_seed(3)
    batch = torch.randint(0, model.config.vocab_size, (2, 9), generator=generator)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    optimizer = build_optimizer("adamw", model, lr=ARCH_LR, weight_decay=0.0)
    losses = []
    for _ in range(ARCH_STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = next_token_loss(model, inputs, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = next_token_loss(model, inputs, targets).item()
    assert all(math.isfinite(v) for v in [*losses, final]), f"{name}: non-finite loss {[*losses, final]}"
    assert final < 0.9 * losses[0], (
        f"{name}: {ARCH_STEPS} AdamW steps (lr {ARCH_LR}) on one batch moved the loss "
        f"{losses[0]:.3f} -> {final:.3f}; expected a drop of at least 10%"
    )


def _toy_regression(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(64, 8, generator=generator)
    targets = inputs @ torch.randn(8, 1, generator=generator) + 0.5  # (64, 1)
    torch.manual_seed(seed)
    return nn.Linear(8, 1), inputs, targets


@check("optimizers")
def optimizer_fits_a_toy_regression(name: str, obj: Any) -> None:
    """The optimizer lowers a toy regression's mean squared error by half in 60 steps."""
    model, inputs, targets = _toy_regression()
    entry = get_registry("optimizers").get(name)
    lr = float(entry.meta.get("conformance_lr", TOY_LR)) if entry is not None else TOY_LR
    groups = [
        {"params": [model.weight], "weight_decay": 0.0},
        {"params": [model.bias], "weight_decay": 0.0},
    ]
    optimizer = obj(groups, lr=lr)
    assert isinstance(optimizer, torch.optim.Optimizer), (
        f"optimizer '{name}': the factory returned a {type(optimizer).__name__}, "
        "expected a torch.optim.Optimizer"
    )
    loss_fn = nn.MSELoss()
    with torch.no_grad():
        initial = loss_fn(model(inputs), targets).item()
    for _ in range(TOY_STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss_fn(model(inputs), targets).item()
    assert math.isfinite(final), f"optimizer '{name}': the loss became {final}"
    assert final < 0.5 * initial, (
        f"optimizer '{name}' (lr {lr}): {TOY_STEPS} steps moved the toy regression's loss "
        f"{initial:.3f} -> {final:.3f}; expected at most half. If it needs another learning rate, "
        "register it with conformance_lr=..."
    )
