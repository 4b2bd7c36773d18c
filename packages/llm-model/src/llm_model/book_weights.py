"""The book's own files: a chapter-4 ``GPTModel`` ``state_dict`` saved with ``torch.save``.

A reader who trained with the book's code has ``torch.save(model.state_dict(),
"model.pth")`` (chapter 5), or ``torch.save({"model_state_dict": ...,
"optimizer_state_dict": ...}, "model_and_optimizer.pth")``. Its tensor names are
:class:`~llm_model.GPTModel`'s own (``tok_emb``, ``trf_blocks.{i}.att.W_query``,
``ff.layers.0``, ``norm1.scale`` …); the only extra entries are the attention
modules' causal-mask buffers (``trf_blocks.{i}.att.mask``), which are not weights.

The file is read with ``torch.load(weights_only=True)`` (no arbitrary unpickling),
checked against the preset's shapes (every mismatch listed at once, so a wrong
preset or a missing ``--qkv-bias`` names what differs) and loaded memory-mapped
into a model built on the ``meta`` device, in the file's own dtype.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.errors import CheckpointError
from llm_model.gpt import architecture_config
from llm_model.hf_files import torch_load_safely
from llm_model.loading import load_new_model

__all__ = ["BOOK_BUFFER_SUFFIX", "import_book", "read_book_state_dict"]

#: The book's ``MultiHeadAttention`` saves its causal mask with the weights.
BOOK_BUFFER_SUFFIX = ".att.mask"


def read_book_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth`` from the book's code (a state dict, or one under ``model_state_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: expected a .pth file saved with torch.save(model.state_dict(), ...), found none"
        )
    expected = "a state dict saved with torch.save (read with weights_only=True)"
    loaded: Any = torch_load_safely(path, expected)
    if isinstance(loaded, dict) and isinstance(loaded.get("model_state_dict"), dict):
        loaded = loaded["model_state_dict"]  # chapter 5's model_and_optimizer.pth
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(
            f"{path}: expected a dict of tensor name -> tensor (model.state_dict()), "
            f"found {type(loaded).__name__}"
        )
    return loaded


def import_book(
    path: str | os.PathLike[str],
    *,
    preset: str = "gpt2-124m",
    qkv_bias: bool = False,
    force: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Load a state dict saved from the book's chapter-4 ``GPTModel`` as a :class:`GPTModel` (eval mode).

    ``preset`` and ``qkv_bias`` (and any config ``overrides``, e.g. ``context_length=256``
    for the book's chapter-5 configuration) describe the model the file was saved from;
    the output head is never tied (the book keeps a separate ``out_head``).
    """
    model_class, config = architecture_config(
        "gpt2", preset, **{"qkv_bias": qkv_bias, "tie_weights": False, "drop_rate": 0.0, **overrides}
    )
    found = {n: t for n, t in read_book_state_dict(path).items() if not n.endswith(BOOK_BUFFER_SUFFIX)}
    where = f"{path} (preset {preset}, qkv_bias={str(qkv_bias).lower()})"
    return load_new_model(
        model_class, config, found, what=f"{path}: the model's parameters", where=where, force=force
    )
