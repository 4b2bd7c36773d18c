"""Built-in optimizers and parameter groups (weight decay off for norms, biases, embeddings)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llm_core import get_registry

__all__ = ["adam", "adamw", "build_optimizer", "can_fuse", "param_groups", "sgd"]


def param_groups(model: nn.Module, weight_decay: float, *, decay_all: bool = False) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed group (matrices) and a non-decayed one.

    Norm weights, biases (every tensor with fewer than 2 dimensions) and
    embedding tables are not decayed unless ``decay_all`` is true.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if decay_all or (param.dim() >= 2 and id(param) not in embeddings):
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


#: Devices with fused (single-kernel) Adam/AdamW implementations in torch.
_FUSED_DEVICES = ("cpu", "cuda")


def can_fuse(groups: list[dict[str, Any]]) -> bool:
    """Whether torch's fused Adam/AdamW kernel can update these parameters.

    Plain floating-point tensors on CPU or CUDA, all on one device: yes.
    Sharded (FSDP ``DTensor``) or other subclassed parameters keep the
    for-loop implementation.
    """
    params = [p for group in groups for p in group["params"]]
    return (
        bool(params)
        and all(type(p) is nn.Parameter and p.is_floating_point() for p in params)
        and len({p.device for p in params}) == 1
        and params[0].device.type in _FUSED_DEVICES
    )


def adamw(groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float] = (0.9, 0.95), **kw: Any):
    """``torch.optim.AdamW``, fused into one kernel per step where :func:`can_fuse` allows."""
    kw.setdefault("fused", can_fuse(groups) or None)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **kw)


def adam(groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float] = (0.9, 0.999), **kw: Any):
    """``torch.optim.Adam`` (weight decay as L2 in the gradient), fused where :func:`can_fuse` allows."""
    kw.setdefault("fused", can_fuse(groups) or None)
    return torch.optim.Adam(groups, lr=lr, betas=betas, **kw)


def sgd(groups: list[dict[str, Any]], *, lr: float, momentum: float = 0.9, **kw: Any):
    """``torch.optim.SGD`` with momentum."""
    kw.pop("betas", None)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, **kw)


def build_optimizer(
    name: str, model: nn.Module, *, lr: float, weight_decay: float, decay_all: bool = False, **kw: Any
) -> torch.optim.Optimizer:
    """Look ``name`` up in the optimizers registry and build it over ``model``'s parameter groups."""
    factory = get_registry("optimizers").get_obj(name)
    return factory(param_groups(model, weight_decay, decay_all=decay_all), lr=lr, **kw)
