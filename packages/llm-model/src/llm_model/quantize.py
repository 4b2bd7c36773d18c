"""Fewer bytes per token: a model's weights in int8 or bf16 for inference (``--quantize``).

Decoding one token reads every weight once, so at small batch sizes its speed
is set by the bytes the weights take, not by arithmetic. :func:`quantize_model`
changes what is read, in place, for every registered architecture (it looks
at modules, not at architectures, so a plugin's model gets it too):

* ``none``: the model as loaded.
* ``int8``: every ``nn.Linear`` (the tied output head included) becomes
  torch's dynamic int8 linear layer
  (:func:`torch.ao.quantization.quantize_dynamic`, per-output-channel weight
  scales; each input tensor is quantized on the fly, one scale for the
  tensor, and multiplied by fbgemm's int8 kernels). Weights take 1 byte
  instead of 4. Embeddings and norms stay float32. A tied head gets its own
  int8 copy, so the embedding it shares a tensor with keeps its float32
  rows. CPU only.
* ``bf16``: every parameter and buffer in bfloat16 (2 bytes), as
  ``--dtype bf16`` loads them; logits are bf16 and sampled in float32.

Measured on a small trained model (``tests/test_quantize.py``) and on the demo's
model (``benchmarks/inference.py``): see ``docs/inference.md``. The result is for
inference only: it is not trained further nor saved.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from llm_core.errors import ConfigError

__all__ = ["QUANTIZE_MODES", "quantize_model", "quantize_option"]

#: ``--quantize`` choices.
QUANTIZE_MODES = ("none", "int8", "bf16")
#: The device types each mode runs on (``None``: any).
_DEVICE_TYPES: dict[str, tuple[str, ...] | None] = {"none": None, "int8": ("cpu",), "bf16": None}
_option_stack: list[str] = []


@contextlib.contextmanager
def quantize_option(mode: str) -> Iterator[None]:
    """Inside the block, :func:`quantize_model` called without a mode uses ``mode``.

    For commands whose loading happens deep inside a plugin (``evaluate NAME MODEL
    --quantize int8``): ``with quantize_option("int8"): run_evaluator(...)``, and the
    loader calls ``quantize_model(model)``. An unknown mode is refused here, before any work.
    """
    _check_mode(mode)
    _option_stack.append(mode)
    try:
        yield
    finally:
        _option_stack.pop()


def _check_mode(mode: str) -> None:
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"--quantize: expected one of {', '.join(QUANTIZE_MODES)}, found {mode!r}")


def quantize_model(model: nn.Module, mode: str | None = None) -> nn.Module:
    """Put ``model``'s weights in ``mode`` (``none``, ``int8`` or ``bf16``), in place; return it in eval mode.

    ``mode=None`` takes the innermost :func:`quantize_option`'s, else ``none``
    (``none`` leaves any model as it is). An unknown mode, a device the mode
    has no kernels for (``int8`` on anything but the CPU) or a model already
    quantized another way is a :class:`~llm_core.errors.ConfigError`. The mode
    is recorded as ``model.quantization``.
    """
    if mode is None:
        mode = _option_stack[-1] if _option_stack else "none"
    _check_mode(mode)
    current = getattr(model, "quantization", "none")
    if mode in ("none", current):
        return model.eval()
    if current != "none":
        raise ConfigError(
            f"--quantize {mode}: the model is already quantized ({current}); load it again to change"
        )
    device = _device(model)
    supported = _DEVICE_TYPES[mode]
    if supported is not None and device.type not in supported:
        raise ConfigError(
            f"--quantize {mode}: torch's int8 linear kernels run on the CPU only, but the model is on "
            f"{device}; use --device cpu, or --quantize bf16 on {device.type}"
        )
    if mode == "int8":
        _int8_linears(model)
    else:
        model.to(torch.bfloat16)
    recorded: Any = model  # nn.Module's __setattr__ is typed for tensors and modules only
    recorded.quantization = mode
    return model.eval()


def _device(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter lives (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _int8_linears(model: nn.Module) -> None:
    """Swap every ``nn.Linear`` of ``model`` for torch's dynamic int8 one, per-channel weight scales."""
    model.float()  # the int8 kernels take float32 inputs; a bf16-loaded model's norms follow
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch marks the eager quantization API and its quantized tensors deprecated (in favour of
        # torchao, whose CPU int8 path is slower here: docs/inference.md); they work in every
        # torch this project supports, and the warnings would repeat on each --quantize int8.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
