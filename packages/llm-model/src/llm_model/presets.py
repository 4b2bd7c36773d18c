"""Named GPT configurations: the four GPT-2 sizes of the book and small ones for tests and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from llm_core.config_io import config_from_dict
from llm_core.errors import ConfigError
from llm_model.config import GPTConfig

__all__ = ["LLAMA_PRESETS", "MISTRAL_PRESETS", "PHI_PRESETS", "PRESETS", "get_preset"]

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


def _frozen(presets: dict[str, dict[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: MappingProxyType(values) for name, values in presets.items()})


def _llama3_rope(factor: float) -> dict[str, Any]:
    """Llama 3.1/3.2's RoPE: theta 500 000, llama3 frequency scaling from an 8192-token pretraining."""
    scaling = {"type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    return {"rope_theta": 500000.0, "rope_scaling": scaling | {"original_max_position_embeddings": 8192}}


_LLAMA3: dict[str, Any] = {"vocab_size": 128256, "context_length": 131072, "n_kv_heads": 8, "norm_eps": 1e-5}

#: Preset name -> keyword arguments of :class:`~llm_model.llama.LlamaConfig` (architecture ``llama``).
#: The real shapes are those of Meta's published ``config.json`` files (no weights ship here).
LLAMA_PRESETS: Mapping[str, Mapping[str, Any]] = _frozen(
    {
        "llama-tiny": {"vocab_size": 256, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_kv_heads": 2}
        | {"n_layers": 2, "hidden_dim": 128, "norm_eps": 1e-5, "tie_weights": False},
        "llama-3.2-1b": _LLAMA3
        | {"emb_dim": 2048, "n_layers": 16, "n_heads": 32, "hidden_dim": 8192, "tie_weights": True}
        | _llama3_rope(32.0),
        "llama-3.2-3b": _LLAMA3
        | {"emb_dim": 3072, "n_layers": 28, "n_heads": 24, "hidden_dim": 8192, "tie_weights": True}
        | _llama3_rope(32.0),
        "llama-3.1-8b": _LLAMA3
        | {"emb_dim": 4096, "n_layers": 32, "n_heads": 32, "hidden_dim": 14336, "tie_weights": False}
        | _llama3_rope(8.0),
    }
)

#: Preset name -> keyword arguments of :class:`~llm_model.llama.MistralConfig` (architecture ``mistral``).
MISTRAL_PRESETS: Mapping[str, Mapping[str, Any]] = _frozen(
    {
        "mistral-tiny": {
            "vocab_size": 256,
            "context_length": 64,
            "emb_dim": 64,
            "n_heads": 4,
            "n_kv_heads": 2,
        }
        | {"n_layers": 2, "hidden_dim": 128, "norm_eps": 1e-5, "sliding_window": 8},
        # Mistral 7B v0.1: 4096-token sliding window, 32k positions.
        "mistral-7b": {"vocab_size": 32000, "context_length": 32768, "emb_dim": 4096, "n_heads": 32}
        | {"n_kv_heads": 8, "n_layers": 32, "hidden_dim": 14336, "rope_theta": 10000.0, "norm_eps": 1e-5}
        | {"sliding_window": 4096, "tie_weights": False},
    }
)

#: Preset name -> keyword arguments of :class:`~llm_model.phi.PhiConfig` (architecture ``phi``).
PHI_PRESETS: Mapping[str, Mapping[str, Any]] = _frozen(
    {
        "phi-tiny": {"vocab_size": 256, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_layers": 2}
        | {"hidden_dim": 256, "partial_rotary_factor": 0.5, "norm_eps": 1e-5},
        "phi-2": {"vocab_size": 51200, "context_length": 2048, "emb_dim": 2560, "n_heads": 32, "n_layers": 32}
        | {"hidden_dim": 10240, "partial_rotary_factor": 0.4, "rope_theta": 10000.0, "norm_eps": 1e-5}
        | {"tie_weights": False},
    }
)


def get_preset(name: str, **overrides: Any) -> GPTConfig:
    """The :class:`GPTConfig` of preset ``name``, with ``overrides`` applied (validated)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(PRESETS)}")
    return config_from_dict(GPTConfig, {**PRESETS[name], **overrides}, source=f"preset '{name}'")
