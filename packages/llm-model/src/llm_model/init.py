"""Weight initialisation for any module tree: :func:`init_weights`.

Two schemes, the two values of :attr:`llm_model.GPTConfig.init`:

``"gpt2"``
    GPT-2's: every ``nn.Linear`` and ``nn.Embedding`` weight drawn from
    N(0, ``std`` = 0.02), biases zero, norm gains one and shifts zero; the
    *residual projections* (the layers whose output is added to the residual
    stream, named by each block's ``residual_projections``, see
    :class:`llm_model.Block`) drawn from N(0, 0.02 / sqrt(2 * n_layers)), so the
    residual stream's variance does not grow with depth. ``scale_residual=False``
    leaves them at N(0, 0.02), what Hugging Face does for Llama, Mistral and Phi.
``"pytorch"``
    torch's own layer defaults: each module's ``reset_parameters()`` (Kaiming-
    uniform ``nn.Linear``, N(0, 1) ``nn.Embedding``), norm gains one and shifts
    zero. What the book's chapter-4 model has.

Rules, applied to each module's own parameters (children first, as
``nn.Module.apply``): ``nn.Linear``/``nn.Embedding`` as above; a parameter named
``bias`` or ``shift`` is zeroed; a one-dimensional ``weight`` or ``scale`` (a norm's
gain) is set to one; any other parameter is initialised by its module's own
``reset_parameters()``. A parameter no rule covers is a :class:`ConfigError`
naming it, so a model never trains from uninitialised memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_model.config import INIT_SCHEMES

__all__ = ["INIT_SCHEMES", "init_weights", "residual_projection_weights"]

#: GPT-2's standard deviation for linear and embedding weights.
GPT2_STD = 0.02
_ZERO_NAMES = ("bias", "shift")
_ONE_NAMES = ("weight", "scale")


def init_weights(
    model: nn.Module,
    scheme: str = "gpt2",
    *,
    std: float = GPT2_STD,
    scale_residual: bool = True,
    n_layers: int | None = None,
) -> nn.Module:
    """Initialise every parameter of ``model`` (any module tree) with ``scheme``; returns ``model``.

    Args:
        model: the module tree (a whole model, a list of blocks, one layer).
        scheme: ``"gpt2"`` or ``"pytorch"`` (see the module docstring).
        std: the ``"gpt2"`` scheme's standard deviation.
        scale_residual: ``"gpt2"`` only: draw the blocks' residual projections
            with ``std / sqrt(2 * n_layers)``.
        n_layers: the depth in that factor; default: the number of blocks in
            ``model`` (modules with a ``residual_projections`` attribute).

    Raises:
        ConfigError: an unknown ``scheme``, or a parameter no rule covers.
    """
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"init_weights: unknown scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    initialise = _gpt2_module if scheme == "gpt2" else _pytorch_module
    with torch.no_grad():
        for prefix, module in _children_first(model):
            initialise(module, prefix, std)
        if scheme == "gpt2" and scale_residual:
            blocks = n_layers if n_layers is not None else _count_blocks(model)
            residual = {id(p) for p in residual_projection_weights(model)}
            for param in model.parameters():  # the model's order, so a seed gives the same draws
                if id(param) in residual:
                    nn.init.normal_(param, mean=0.0, std=std / math.sqrt(2 * max(blocks, 1)))
    return model


def residual_projection_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights of the layers that write into the residual stream, as the blocks of ``model`` name them.

    A block lists them in ``residual_projections``: module paths relative to the
    block, e.g. ``("att.out_proj", "ff.layers.2")``.
    """
    weights = []
    for module in model.modules():
        for path in getattr(module, "residual_projections", ()):
            layer = module.get_submodule(path)
            weight = getattr(layer, "weight", None)
            if not isinstance(weight, nn.Parameter):
                raise ConfigError(
                    f"init_weights: {type(module).__name__}.residual_projections names '{path}', "
                    f"a {type(layer).__name__} without a weight parameter"
                )
            weights.append(weight)
    return weights


def _count_blocks(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if getattr(m, "residual_projections", None))


def _children_first(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``(qualified name, module)`` for every module, children before parents (``Module.apply``'s order)."""
    for name, child in module.named_children():
        yield from _children_first(child, f"{prefix}{name}.")
    yield prefix, module


def _own_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in module.named_parameters(recurse=False)]


def _gpt2_module(module: nn.Module, prefix: str, std: float) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)
        _by_name(module, prefix, skip=("weight", "bias"))
    else:
        _by_name(module, prefix)


def _pytorch_module(module: nn.Module, prefix: str, std: float) -> None:
    reset: Any = getattr(module, "reset_parameters", None)
    if _own_parameters(module) and callable(reset):
        reset()
        return
    _by_name(module, prefix)


def _by_name(module: nn.Module, prefix: str, *, skip: tuple[str, ...] = ()) -> None:
    """Zero biases/shifts, set 1-D weights/scales to one; anything else goes to ``reset_parameters()``."""
    unknown = []
    for name, param in _own_parameters(module):
        if name in skip:
            continue
        if name in _ZERO_NAMES:
            nn.init.zeros_(param)
        elif name in _ONE_NAMES and param.dim() == 1:
            nn.init.ones_(param)
        else:
            unknown.append(name)
    if not unknown:
        return
    reset: Any = getattr(module, "reset_parameters", None)
    if not callable(reset):
        names = ", ".join(prefix + name for name in unknown)
        raise ConfigError(
            f"init_weights: no rule for {names} (a parameter of {type(module).__name__}); "
            "name it weight/bias (scale/shift for a norm) or give the module a reset_parameters() method"
        )
    reset()
    _by_name(module, prefix, skip=(*skip, *unknown))  # reset_parameters() may have redone known ones
