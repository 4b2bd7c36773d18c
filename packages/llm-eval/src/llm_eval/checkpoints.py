"""Loading what an evaluator needs from a checkpoint directory: the model and its tokenizer."""

from __future__ import annotations

import os
from typing import Any

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
    checkpoint: str | os.PathLike[str], tokenizer: Any = None, *, device: str = "cpu"
) -> tuple[Any, Any]:
    """Load a checkpoint directory (eval mode, on ``device``) and its tokenizer."""
    from llm_model import load_pretrained

    model = load_pretrained(checkpoint, map_location=device)
    return model, resolve_tokenizer(tokenizer, model)
