"""Built-in optimizers and parameter groups (weight decay off for norms, biases, embeddings).

An optimizer factory is ``factory(param_groups, *, lr, **options)``; its
keyword parameters are the options a config may set (``betas`` and
``optimizer_options``, e.g. ``--set optimizer_options.momentum=0.95``), checked
against its signature before it is called. The built-ins' defaults:

========  ==========================================================
``adamw`` betas (0.9, 0.95) (nanoGPT's, GPT-3's; torch's are (0.9, 0.999)),
          eps 1e-8, amsgrad false, fused where possible
``adam``  betas (0.9, 0.999), eps 1e-8, amsgrad false, fused where possible
``sgd``   momentum 0.9 (torch's is 0), dampening 0, nesterov false; no betas
========  ==========================================================
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from llm_core import get_registry
from llm_core.errors import ConfigError

__all__ = [
    "adam",
    "adamw",
    "build_optimizer",
    "can_fuse",
    "check_optimizer_options",
    "optimizer_options",
    "param_groups",
    "sgd",
]


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


def adamw(
    groups: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    amsgrad: bool = False,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """``torch.optim.AdamW`` with betas (0.9, 0.95) by default (nanoGPT's, GPT-3's), not torch's (0.9, 0.999).

    Weight decay comes per parameter group (``weight_decay`` of the config, none
    on norms, biases and embeddings). ``fused=None``: one fused kernel per step
    where :func:`can_fuse` allows.
    """
    fused = (can_fuse(groups) or None) if fused is None else fused
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, fused=fused)


def adam(
    groups: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    amsgrad: bool = False,
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (weight decay as L2 in the gradient), torch's defaults: betas (0.9, 0.999).

    ``fused=None``: fused where :func:`can_fuse` allows.
    """
    fused = (can_fuse(groups) or None) if fused is None else fused
    return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, fused=fused)


def sgd(
    groups: list[dict[str, Any]],
    *,
    lr: float,
    momentum: float = 0.9,
    dampening: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """``torch.optim.SGD``; defaults momentum 0.9 (torch's is 0), dampening 0, no Nesterov. No betas."""
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov)


def optimizer_options(factory: Any) -> dict[str, Any] | None:
    """The options an optimizer factory takes, name -> default (``inspect.Parameter.empty`` if required).

    Every keyword parameter but the parameter groups and ``lr``; ``None`` when the
    factory takes ``**kwargs`` (any name is accepted, nothing can be checked).
    """
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = [p for p in params[1:] if p.kind not in (inspect.Parameter.VAR_POSITIONAL,)]
    return {p.name: p.default for p in named if p.name != "lr"}


def check_optimizer_options(name: str, factory: Any, options: dict[str, Any]) -> None:
    """Raise one :class:`ConfigError` naming the keys ``factory`` does not take and listing those it does."""
    known = optimizer_options(factory)
    if known is None:
        return
    unknown = sorted(set(options) - set(known))
    if not unknown:
        return
    if unknown == ["betas"]:
        problem = f"optimizer '{name}' takes no betas (set betas only for Adam-family optimizers)"
    else:
        problem = f"optimizer '{name}' has no option {', '.join(repr(k) for k in unknown)}"
    valid = ", ".join(k if v is inspect.Parameter.empty else f"{k} (default {v!r})" for k, v in known.items())
    raise ConfigError(f"{problem}; its optimizer_options: {valid or 'none'}")


def build_optimizer(
    name: str,
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    decay_all: bool = False,
    **options: Any,
) -> torch.optim.Optimizer:
    """Look ``name`` up in the optimizers registry and build it over ``model``'s parameter groups.

    ``options`` (``betas`` and the config's ``optimizer_options``) go to the
    factory as keyword arguments, after a check against its signature: a key it
    does not take is a :class:`ConfigError` listing the ones it does.
    """
    factory = get_registry("optimizers").get_obj(name)
    check_optimizer_options(name, factory, options)
    return factory(param_groups(model, weight_decay, decay_all=decay_all), lr=lr, **options)
