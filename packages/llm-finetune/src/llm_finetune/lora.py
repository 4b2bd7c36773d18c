"""LoRA, low-rank adaptation (the book's appendix E): adapters on chosen linear layers.

``LinearWithLoRA(linear)`` computes ``linear(x) + scaling * dropout(x) @ A @ B`` with
``A (in, rank)`` initialised like a linear layer and ``B (rank, out)`` initialised to zero,
so a freshly injected model computes exactly what the base model did. ``scaling`` is
``alpha / rank`` (the LoRA paper's and PEFT's convention; the book multiplies by ``alpha``
alone, which equals ours with ``alpha = book_alpha * rank``).

Layers are chosen by name: glob patterns over module names (``"trf_blocks.*"``,
``"*.att.W_query"``) or regular expressions prefixed with ``re:`` (``"re:.*W_(query|value)"``).
A pattern set that matches no linear layer is a :class:`~llm_core.errors.ConfigError`
listing the layer names. This module knows nothing of files, checkpoints or classifiers:
:mod:`llm_finetune.adapters` saves and loads adapters.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_finetune.config import LoRAConfig

__all__ = [
    "LinearWithLoRA",
    "LoRAConfig",
    "LoRALayer",
    "apply_lora",
    "linear_layer_names",
    "lora_layers",
    "lora_state_dict",
    "merge_lora",
    "remove_lora",
    "unmerge_lora",
]


class LoRALayer(nn.Module):
    """The low-rank update ``scaling * dropout(x) @ A @ B``: ``(..., in) -> (..., out)``."""

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(in_dim, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # like nn.Linear's weight
        self.B = nn.Parameter(torch.zeros(rank, out_dim))  # zero: the update starts at 0
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        """The update as a linear layer's weight: ``(out, in)``."""
        return (self.A @ self.B).T * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaling * (self.dropout(x) @ self.A @ self.B)  # (..., out)


class LinearWithLoRA(nn.Module):
    """A frozen-able ``nn.Linear`` plus a :class:`LoRALayer`; can merge the update into the weight."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha, dropout)
        self.lora.to(device=linear.weight.device, dtype=linear.weight.dtype)
        self.merged = False

    @property
    def weight(self) -> torch.Tensor:
        """The base weight (merged or not), for code that reads ``layer.weight``."""
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """The base bias."""
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)  # (..., out)
        if self.merged:
            return out
        return out + self.lora(x)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the low-rank update into ``linear.weight`` (forward then skips the adapter)."""
        if not self.merged:
            self.linear.weight += self.lora.delta_weight().to(self.linear.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again (inverse of :meth:`merge`)."""
        if self.merged:
            self.linear.weight -= self.lora.delta_weight().to(self.linear.weight.dtype)
            self.merged = False


def linear_layer_names(model: nn.Module) -> list[str]:
    """Names of every ``nn.Linear`` in ``model`` (the candidates for adapters)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("re:"):
            if re.fullmatch(pattern[3:], name):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def apply_lora(model: nn.Module, config: LoRAConfig | None = None, *, freeze: bool = True) -> list[str]:
    """Wrap every ``nn.Linear`` whose name matches ``config.targets``; return the wrapped names.

    With ``freeze`` every parameter except the adapters' gets ``requires_grad=False``.
    Layers already wrapped are skipped. No match raises :class:`ConfigError` listing
    the linear layers.
    """
    config = config or LoRAConfig()
    candidates = linear_layer_names(model)
    chosen = [
        name
        for name in candidates
        if _matches(name, config.targets) and not name.endswith(".linear")  # not inside a LinearWithLoRA
    ]
    if not chosen:
        raise ConfigError(
            f"LoRA targets {config.targets} match no linear layer; expected glob patterns "
            f"(or 're:' regexes) over these names: {', '.join(candidates) or 'none'}"
        )
    if freeze:
        for param in model.parameters():
            param.requires_grad_(False)
    for name in chosen:
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear), f"{name} is not an nn.Linear"
        _set_submodule(model, name, LinearWithLoRA(linear, config.rank, config.alpha, config.dropout))
    return chosen


def lora_layers(model: nn.Module) -> dict[str, LinearWithLoRA]:
    """``{name: layer}`` of every :class:`LinearWithLoRA` in ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LinearWithLoRA)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every adapter into its base weight (in place); outputs stay the same."""
    for layer in lora_layers(model).values():
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` (in place)."""
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


def remove_lora(model: nn.Module) -> nn.Module:
    """Merge the adapters and put the plain ``nn.Linear`` layers back: a base-architecture model."""
    for name, layer in lora_layers(model).items():
        layer.merge()
        _set_submodule(model, name, layer.linear)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' tensors only: ``{"<layer>.lora.A": ..., "<layer>.lora.B": ...}``."""
    return {
        name: tensor for name, tensor in model.state_dict().items() if name.endswith((".lora.A", ".lora.B"))
    }
