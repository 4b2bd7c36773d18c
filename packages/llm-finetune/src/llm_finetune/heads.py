"""Output heads for finetuning: a causal LM becomes a classifier (the book's chapter 6).

The head ``Linear(emb_dim, vocab_size)`` is replaced by ``Linear(emb_dim, num_classes)``;
the class logits are read at each row's **last real token** (rows are right-padded,
and causal attention means the padding after it changes nothing).
"""

from __future__ import annotations

import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_model import model_config

__all__ = ["HEAD", "last_token_logits", "to_classifier"]

#: The name of a GPT-style model's output layer.
HEAD = "out_head"


def to_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace ``model.out_head`` with ``Linear(emb_dim, num_classes)`` (in place; returns ``model``)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes={num_classes!r}: expected an integer >= 2")
    if not isinstance(getattr(model, HEAD, None), nn.Module) or not hasattr(model, "config"):
        raise ConfigError(
            f"cannot make a classifier of {type(model).__name__}: expected a GPT-style model with "
            f"an `{HEAD}` layer and a `config.emb_dim`"
        )
    weight = getattr(getattr(model, HEAD), "weight", None)
    head = nn.Linear(model_config(model).emb_dim, num_classes)
    if weight is not None:
        head.to(device=weight.device, dtype=weight.dtype)
    setattr(model, HEAD, head)
    return model


def last_token_logits(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Class logits at each row's last real token: ``ids (b, t)``, ``lengths (b,)`` -> ``(b, classes)``."""
    device = next(model.parameters()).device
    ids, lengths = ids.to(device), lengths.to(device)
    logits = model(ids)  # (b, t, classes)
    rows = torch.arange(ids.shape[0], device=device)
    return logits[rows, lengths - 1]  # (b, classes)
