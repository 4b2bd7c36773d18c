"""Named GPT configurations: the four GPT-2 sizes of the book and small ones for tests and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from llm_core.config_io import config_from_dict
from llm_core.errors import ConfigError

from llm_model.config import GPTConfig

__all__ = ["PRESETS", "get_preset"]

_GPT2_BASE: dict[str, Any] = {
    "vocab_size": 50257,
    "context_length": 1024,
    "drop_rate": 0.1,
    "qkv_bias": False,
}

#: Preset name -> keyword arguments of :class:`~llm_model.config.GPTConfig`.
#: The GPT-2 sizes follow the book's ``model_configs`` (chapter 5); ``qkv_bias`` is
#: ``False`` as in its 124M example (the book's 163,009,536-parameter count);
#: :func:`llm_model.import_hf` sets it to ``True`` for OpenAI's weights.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "gpt2-124m": MappingProxyType({**_GPT2_BASE, "emb_dim": 768, "n_layers": 12, "n_heads": 12}),
        "gpt2-355m": MappingProxyType({**_GPT2_BASE, "emb_dim": 1024, "n_layers": 24, "n_heads": 16}),
        "gpt2-774m": MappingProxyType({**_GPT2_BASE, "emb_dim": 1280, "n_layers": 36, "n_heads": 20}),
        "gpt2-1558m": MappingProxyType({**_GPT2_BASE, "emb_dim": 1600, "n_layers": 48, "n_heads": 25}),
        # Small shapes for tests, the conformance suite and the demo (GPT-2 BPE vocabulary).
        "tiny": MappingProxyType(
            {"vocab_size": 50257, "context_length": 64, "emb_dim": 64, "n_layers": 2, "n_heads": 4}
            | {"drop_rate": 0.0, "qkv_bias": False}
        ),
        "small": MappingProxyType(
            {"vocab_size": 50257, "context_length": 128, "emb_dim": 128, "n_layers": 4, "n_heads": 4}
            | {"drop_rate": 0.1, "qkv_bias": False}
        ),
        "medium": MappingProxyType(
            {"vocab_size": 50257, "context_length": 256, "emb_dim": 256, "n_layers": 6, "n_heads": 8}
            | {"drop_rate": 0.1, "qkv_bias": False}
        ),
    }
)


def get_preset(name: str, **overrides: Any) -> GPTConfig:
    """The :class:`GPTConfig` of preset ``name``, with ``overrides`` applied (validated)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(PRESETS)}")
    return config_from_dict(GPTConfig, {**PRESETS[name], **overrides}, source=f"preset '{name}'")
