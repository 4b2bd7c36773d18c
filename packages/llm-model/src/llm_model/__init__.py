"""llm-model: GPT-2 family models, text generation, checkpoints and Hugging Face weight import/export.

Everything here follows chapters 4-5 of "Build a Large Language Model (From
Scratch)"; attention comes from :mod:`llm_attention`. ``gpt2`` is registered
as an architecture (with its presets) through the scratchlm plugin hooks.

Names are imported lazily (PEP 562), so loading the plugin for
``scratchlm --help`` does not import torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_model.blocks import GELU, FeedForward, LayerNorm, TransformerBlock
    from llm_model.checkpoint import (
        load_pretrained,
        read_checkpoint_config,
        save_pretrained,
        write_model_files,
    )
    from llm_model.config import GPTConfig
    from llm_model.generation import generate, generate_text, stream_tokens
    from llm_model.gpt import GPTModel, build_model, count_parameters, model_info
    from llm_model.hf import export_hf, import_hf
    from llm_model.presets import PRESETS, get_preset

try:
    __version__ = version("llm-model")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_EXPORTS = {
    "GELU": "blocks",
    "FeedForward": "blocks",
    "LayerNorm": "blocks",
    "TransformerBlock": "blocks",
    "load_pretrained": "checkpoint",
    "read_checkpoint_config": "checkpoint",
    "save_pretrained": "checkpoint",
    "write_model_files": "checkpoint",
    "GPTConfig": "config",
    "generate": "generation",
    "generate_text": "generation",
    "stream_tokens": "generation",
    "GPTModel": "gpt",
    "build_model": "gpt",
    "count_parameters": "gpt",
    "model_info": "gpt",
    "export_hf": "hf",
    "import_hf": "hf",
    "PRESETS": "presets",
    "get_preset": "presets",
}

__all__ = [
    "GELU",
    "PRESETS",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "LayerNorm",
    "TransformerBlock",
    "__version__",
    "build_model",
    "count_parameters",
    "export_hf",
    "generate",
    "generate_text",
    "get_preset",
    "import_hf",
    "load_pretrained",
    "model_info",
    "read_checkpoint_config",
    "save_pretrained",
    "stream_tokens",
    "write_model_files",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llm_model.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
