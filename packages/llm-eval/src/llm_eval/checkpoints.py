"""Loading what an evaluator needs from a checkpoint directory: the model and its tokenizer.

An evaluator that scores a model takes the checkpoint as its first parameter,
named ``checkpoint`` (what ``scratchlm evaluate NAME MODEL`` passes), plus
``model=`` (an ``nn.Module`` already in memory), ``tokenizer=``, ``device=`` and
``dtype=``, and starts with one call::

    model, tokenizer = load_model_and_tokenizer(
        checkpoint, tokenizer, model=model, device=device, dtype=dtype, evaluator="words"
    )

The tokenizer is the one the checkpoint records (a registered name, or the
model's own ``tokenizer.json`` saved beside its weights), unless ``tokenizer``
names another; nobody reads ``config.json`` by hand.
"""

from __future__ import annotations

import os
from typing import Any

from llm_core.errors import ConfigError

__all__ = ["load_model_and_tokenizer", "resolve_tokenizer"]

DEFAULT_TOKENIZER = "gpt2"


def resolve_tokenizer(tokenizer: Any, model: Any = None) -> Any:
    """A tokenizer object from a name, a BPE ``.json`` path or an object (returned as is).

    ``None`` takes the ``"tokenizer"`` recorded in the model's checkpoint config, else ``gpt2``.
    """
    if tokenizer is None:
        recorded = (getattr(model, "checkpoint_config", None) or {}).get("tokenizer")
        tokenizer = recorded if isinstance(recorded, str) else DEFAULT_TOKENIZER
    if isinstance(tokenizer, (str, os.PathLike)):
        from llm_data import get_tokenizer

        return get_tokenizer(tokenizer)
    return tokenizer


def load_model_and_tokenizer(
    checkpoint: str | os.PathLike[str] | None,
    tokenizer: Any = None,
    *,
    model: Any = None,
    device: str = "cpu",
    dtype: str | None = None,
    evaluator: str = "evaluator",
    with_tokenizer: bool = True,
) -> tuple[Any, Any]:
    """The model to evaluate (eval mode, on ``device``) and its tokenizer.

    Args:
        checkpoint: a checkpoint directory (``scratchlm evaluate NAME MODEL``); loaded
            with :func:`llm_model.load_pretrained` (sha256 checks, memory check).
        tokenizer: a registered name, a tokenizer ``.json`` or an object; ``None``:
            the one the checkpoint records, else ``gpt2``.
        model: a model already in memory, used instead of ``checkpoint``.
        device: where to load the weights (``cpu``, ``cuda``, ``mps`` …).
        dtype: ``auto``/``fp32``/``bf16`` (``None``: ``--dtype`` of the command, else
            the checkpoint's own).
        evaluator: the evaluator's name, for the error when neither is given.
        with_tokenizer: ``False``: return ``(model, None)`` (inputs already token ids).

    Raises:
        ConfigError: neither ``checkpoint`` nor ``model`` given.
    """
    if model is None:
        if checkpoint is None:
            raise ConfigError(
                f"{evaluator}: expected a checkpoint directory (or a model); "
                f"pass it as MODEL: scratchlm evaluate {evaluator} MODEL …"
            )
        from llm_model import load_pretrained, quantize_model

        # quantize_model() without a mode: the command's --quantize (llm_model.quantize_option)
        model = quantize_model(load_pretrained(checkpoint, map_location=device, dtype=dtype))
    return model, resolve_tokenizer(tokenizer, model) if with_tokenizer else None
