"""Next-token cross-entropy, per batch and over a loader (the book's chapter 5), and perplexity."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from llm_train.tasks import next_token_loss

__all__ = ["calc_loss_batch", "calc_loss_loader", "perplexity"]


def calc_loss_batch(
    input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module, device: torch.device | str
) -> torch.Tensor:
    """Mean cross-entropy of the model's next-token logits against ``target_batch``.

    ``input_batch`` and ``target_batch`` are ``(batch, seq)`` token ids; targets
    equal to -100 are ignored.
    """
    return next_token_loss(model, input_batch.to(device), target_batch.to(device))


def calc_loss_loader(
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    model: nn.Module,
    device: torch.device | str,
    num_batches: int | None = None,
) -> float:
    """Average :func:`calc_loss_batch` over the first ``num_batches`` batches (all when None).

    Returns ``nan`` for an empty loader, like the book.
    """
    total, count = 0.0, 0
    for i, (inputs, targets) in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        total += calc_loss_batch(inputs, targets, model, device).item()
        count += 1
    return total / count if count else float("nan")


def perplexity(loss: float) -> float:
    """``exp(loss)``: the effective number of equally likely next tokens."""
    return math.exp(loss) if loss < 700 else float("inf")
