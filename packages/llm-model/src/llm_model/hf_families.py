"""Llama, Mistral and Phi weights in the Hugging Face layout: import and export.

Unlike GPT-2, these Hugging Face models use ``nn.Linear`` with separate
query/key/value projections, so the layouts differ by names only: no
transposes, no splits. RoPE needs no permutation either: Hugging Face and
:class:`llm_attention.RotaryEmbedding` both rotate the two halves of each
head (``rotate_half``). Name maps (Hugging Face names without the ``model.``
prefix; ``{i}`` is the layer):

===================================  =======================================  ===========================
ours                                 Llama / Mistral                          Phi
===================================  =======================================  ===========================
``tok_emb``                          ``embed_tokens``                         ``embed_tokens``
``trf_blocks.{i}.norm1`` / ``norm``  ``layers.{i}.input_layernorm``           ``layers.{i}.input_layernorm``
``trf_blocks.{i}.att.W_query``       ``layers.{i}.self_attn.q_proj``          same
``…att.W_key`` / ``W_value``         ``…self_attn.k_proj`` / ``v_proj``       same
``…att.out_proj``                    ``…self_attn.o_proj``                    ``…self_attn.dense``
``trf_blocks.{i}.norm2``             ``layers.{i}.post_attention_layernorm``  (none: one shared norm)
``…ff.gate`` / ``up`` / ``down``     ``…mlp.gate_proj`` / ``up_proj`` / …     —
``…ff.layers.0`` / ``layers.2``      —                                        ``…mlp.fc1`` / ``fc2``
``final_norm``                       ``norm``                                 ``final_layernorm``
``out_head``                         ``lm_head`` (absent when tied)           ``lm_head`` (with bias)
===================================  =======================================  ===========================

Norm parameters are ``scale``/``shift`` here and ``weight``/``bias`` there.
``transformers`` is never imported: files are read and written with safetensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_model.checkpoint import _dtype_name, unique_tensors
from llm_model.decoder import RotaryDecoder
from llm_model.hf import _TANH_GELUS
from llm_model.hf_files import read_hf_weights
from llm_model.llama import LlamaConfig, LlamaModel, MistralConfig, MistralModel
from llm_model.loading import load_new_model
from llm_model.phi import PhiConfig, PhiModel

__all__ = ["SUPPORTED_MODEL_TYPES", "export_hf_family", "hf_family_config", "import_hf_family"]

#: ``model_type`` values of Hugging Face ``config.json`` files that :func:`llm_model.import_hf` reads.
SUPPORTED_MODEL_TYPES = ("gpt2", "llama", "mistral", "phi")
#: Hugging Face RoPE types with an exact :class:`llm_attention.RotaryEmbedding` equivalent.
_ROPE_TYPES = ("default", "linear", "llama3")
_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
#: Buffers some older files carry; not weights.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)

#: transformers' config defaults (used for keys a config.json leaves out).
_HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
    },
    "mistral": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 4096 * 32,
        "rms_norm_eps": 1e-6,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "sliding_window": 4096,
    },
    "phi": {
        "vocab_size": 51200,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "max_position_embeddings": 2048,
        "layer_norm_eps": 1e-5,
        "resid_pdrop": 0.0,
        "tie_word_embeddings": False,
        "partial_rotary_factor": 0.5,
    },
}


# --- names -----------------------------------------------------------------------------------------


def _llama_names(config: LlamaConfig) -> dict[str, str]:
    """Our state-dict name -> Hugging Face name (without ``model.``) for Llama and Mistral."""
    names = {"tok_emb.weight": "embed_tokens.weight", "final_norm.scale": "norm.weight"}
    for i in range(config.n_layers):
        b, h = f"trf_blocks.{i}.", f"layers.{i}."
        names |= {
            b + "norm1.scale": h + "input_layernorm.weight",
            b + "att.W_query.weight": h + "self_attn.q_proj.weight",
            b + "att.W_key.weight": h + "self_attn.k_proj.weight",
            b + "att.W_value.weight": h + "self_attn.v_proj.weight",
            b + "att.out_proj.weight": h + "self_attn.o_proj.weight",
            b + "norm2.scale": h + "post_attention_layernorm.weight",
            b + "ff.gate.weight": h + "mlp.gate_proj.weight",
            b + "ff.up.weight": h + "mlp.up_proj.weight",
            b + "ff.down.weight": h + "mlp.down_proj.weight",
        }
    if not config.tie_weights:
        names["out_head.weight"] = "lm_head.weight"
    return names


def _phi_names(config: PhiConfig) -> dict[str, str]:
    """Our state-dict name -> Hugging Face name (without ``model.``) for Phi."""
    names = {
        "tok_emb.weight": "embed_tokens.weight",
        "final_norm.scale": "final_layernorm.weight",
        "final_norm.shift": "final_layernorm.bias",
        "out_head.bias": "lm_head.bias",
    }
    ours_to_hf = {
        "norm.scale": "input_layernorm.weight",
        "norm.shift": "input_layernorm.bias",
        "att.out_proj": "self_attn.dense",
        "ff.layers.0": "mlp.fc1",
        "ff.layers.2": "mlp.fc2",
    } | {f"att.W_{n}": f"self_attn.{n[0]}_proj" for n in ("query", "key", "value")}
    for i in range(config.n_layers):
        b, h = f"trf_blocks.{i}.", f"layers.{i}."
        for ours, theirs in ours_to_hf.items():
            if ours.startswith("norm."):
                names[b + ours] = h + theirs
            else:
                names |= {b + ours + f".{p}": h + theirs + f".{p}" for p in ("weight", "bias")}
    if not config.tie_weights:
        names["out_head.weight"] = "lm_head.weight"
    return names


# --- configs ---------------------------------------------------------------------------------------


def _rope_from_hf(hf: Mapping[str, Any], path: Path, max_positions: int) -> tuple[float, Any, Any]:
    """``(rope_theta, rope_scaling in our format, partial_rotary_factor or None)`` of a config.json.

    Reads both transformers 5's ``rope_parameters`` and the older top-level
    ``rope_theta`` / ``rope_scaling`` / ``partial_rotary_factor`` keys.
    """
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    if not isinstance(params, Mapping) or not isinstance(scaling, Mapping):
        raise ConfigError(f"{path}: expected rope_parameters/rope_scaling to be objects or null")
    if any(isinstance(v, Mapping) for v in params.values()):
        raise ConfigError(f"{path}: per-layer-type rope_parameters are not supported; expected one dict")
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    partial = params.get("partial_rotary_factor", hf.get("partial_rotary_factor"))
    source = scaling or params
    kind = source.get("rope_type", source.get("type", "default"))
    if kind not in _ROPE_TYPES:
        raise ConfigError(
            f"{path}: rope type {kind!r} is not supported; expected one of {', '.join(_ROPE_TYPES)}"
        )
    ours: dict[str, Any] | None = None
    if kind == "linear":
        ours = {"type": "linear", "factor": source.get("factor")}
    elif kind == "llama3":
        values = {"original_max_position_embeddings": max_positions} | dict(source)
        ours = {"type": "llama3"} | {key: values.get(key) for key in _LLAMA3_KEYS}
    return theta, ours, partial


def _rope_to_hf(config: LlamaConfig | PhiConfig) -> dict[str, Any]:
    """The RoPE keys of a Hugging Face config.json (the top-level form every transformers version reads)."""
    scaling = config.rope_scaling
    hf_scaling: dict[str, Any] | None = None
    if scaling is not None:
        kind = scaling["type"]
        if kind not in ("linear", "llama3"):
            raise ConfigError(
                f"export_hf: rope scaling {kind!r} has no exact Hugging Face equivalent; "
                "models with rope_scaling null, 'linear' or 'llama3' can be exported"
            )
        hf_scaling = {"rope_type": kind} | {k: v for k, v in scaling.items() if k != "type"}
    return {"rope_theta": config.rope_theta, "rope_scaling": hf_scaling}


def _require(hf: Mapping[str, Any], path: Path, key: str, allowed: tuple[Any, ...], what: str) -> None:
    value = hf.get(key, allowed[0])
    if value not in allowed:
        raise ConfigError(f"{path}: expected {key} {what}, found {value!r}")


def _llama_config_from_hf(hf: Mapping[str, Any], path: Path) -> LlamaConfig:
    model_type = hf["model_type"]
    values = _HF_DEFAULTS[model_type] | {k: v for k, v in hf.items() if k in _HF_DEFAULTS[model_type]}
    _require(hf, path, "hidden_act", ("silu",), "'silu' (SwiGLU)")
    _require(hf, path, "attention_bias", (False,), "false (no attention biases)")
    _require(hf, path, "mlp_bias", (False,), "false (no MLP biases)")
    heads, hidden = values["num_attention_heads"], values["hidden_size"]
    if hf.get("head_dim") is not None and isinstance(heads, int) and hf["head_dim"] * heads != hidden:
        raise ConfigError(
            f"{path}: expected head_dim null or hidden_size / num_attention_heads = {hidden / heads:g}, "
            f"found {hf['head_dim']!r}"
        )
    theta, scaling, partial = _rope_from_hf(hf, path, values["max_position_embeddings"])
    if partial not in (None, 1, 1.0):
        raise ConfigError(f"{path}: expected partial_rotary_factor 1.0 (full RoPE), found {partial!r}")
    kwargs: dict[str, Any] = {
        "vocab_size": values["vocab_size"],
        "context_length": values["max_position_embeddings"],
        "emb_dim": hidden,
        "n_heads": heads,
        "n_layers": values["num_hidden_layers"],
        "n_kv_heads": values["num_key_value_heads"],
        "hidden_dim": values["intermediate_size"],
        "rope_theta": theta,
        "rope_scaling": scaling,
        "norm_eps": values["rms_norm_eps"],
        "drop_rate": values["attention_dropout"],
        "tie_weights": values["tie_word_embeddings"],
    }
    config_class: type[LlamaConfig] = LlamaConfig
    if model_type == "mistral":
        kwargs["sliding_window"] = values["sliding_window"]
        config_class = MistralConfig
    return _build_config(config_class, kwargs, path)


def _phi_config_from_hf(hf: Mapping[str, Any], path: Path) -> PhiConfig:
    values = _HF_DEFAULTS["phi"] | {k: v for k, v in hf.items() if k in _HF_DEFAULTS["phi"]}
    _require(hf, path, "hidden_act", _TANH_GELUS, f"a tanh-approximated GELU ({', '.join(_TANH_GELUS)})")
    _require(hf, path, "qk_layernorm", (False,), "false (no query/key LayerNorm)")
    theta, scaling, partial = _rope_from_hf(hf, path, values["max_position_embeddings"])
    kwargs = {
        "vocab_size": values["vocab_size"],
        "context_length": values["max_position_embeddings"],
        "emb_dim": values["hidden_size"],
        "n_heads": values["num_attention_heads"],
        "n_layers": values["num_hidden_layers"],
        "n_kv_heads": values["num_key_value_heads"],
        "hidden_dim": values["intermediate_size"],
        "partial_rotary_factor": values["partial_rotary_factor"] if partial is None else partial,
        "rope_theta": theta,
        "rope_scaling": scaling,
        "norm_eps": values["layer_norm_eps"],
        "drop_rate": values["resid_pdrop"],
        "tie_weights": values["tie_word_embeddings"],
    }
    return _build_config(PhiConfig, kwargs, path)


def _build_config(config_class: type[Any], kwargs: dict[str, Any], path: Path) -> Any:
    from llm_core.config_io import config_from_dict

    if kwargs["n_kv_heads"] == kwargs["n_heads"]:
        kwargs["n_kv_heads"] = None  # one key/value head per query head: our default

    return config_from_dict(config_class, kwargs, source=str(path))


def _common_hf(config: LlamaConfig | PhiConfig, model: nn.Module) -> dict[str, Any]:
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.emb_dim,
        "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.kv_heads,
        "max_position_embeddings": config.context_length,
        **_rope_to_hf(config),
        "attention_dropout": config.drop_rate,
        "tie_word_embeddings": config.tie_weights,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": _dtype_name(model),
    }


def hf_family_config(model: nn.Module) -> dict[str, Any]:
    """The Hugging Face ``config.json`` of a Llama, Mistral or Phi model."""
    config: Any = getattr(model, "config", None)
    family = _family_of(config)
    common = _common_hf(config, model)
    if family.model_type == "phi":
        return {
            "architectures": ["PhiForCausalLM"],
            "model_type": "phi",
            **common,
            "hidden_act": "gelu_new",
            "layer_norm_eps": config.norm_eps,
            "partial_rotary_factor": config.partial_rotary_factor,
            "qk_layernorm": False,
            "resid_pdrop": config.drop_rate,
            "embd_pdrop": config.drop_rate,
        }
    hf = {
        "architectures": [family.hf_class],
        "model_type": family.model_type,
        **common,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps,
    }
    if family.model_type == "mistral":
        hf["sliding_window"] = config.sliding_window
    else:
        hf |= {"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1}
    return hf


# --- families --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Family:
    model_type: str
    hf_class: str
    model_class: type[RotaryDecoder]
    config_class: type[Any]
    names: Callable[[Any], dict[str, str]]
    config_from_hf: Callable[[Mapping[str, Any], Path], Any]


_FAMILIES = {
    "llama": _Family(
        "llama", "LlamaForCausalLM", LlamaModel, LlamaConfig, _llama_names, _llama_config_from_hf
    ),
    "mistral": _Family(
        "mistral", "MistralForCausalLM", MistralModel, MistralConfig, _llama_names, _llama_config_from_hf
    ),
    "phi": _Family("phi", "PhiForCausalLM", PhiModel, PhiConfig, _phi_names, _phi_config_from_hf),
}


def _family_of(config: Any) -> _Family:
    for family in _FAMILIES.values():  # exact type: a MistralConfig is also a LlamaConfig
        if type(config) is family.config_class:
            return family
    raise ConfigError(
        f"export_hf: expected a model whose config is a GPTConfig, LlamaConfig, MistralConfig or PhiConfig, "
        f"found {type(config).__name__}; supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def import_hf_family(
    directory: Path, hf: Mapping[str, Any], *, dtype: torch.dtype | None = None, force: bool = False
) -> nn.Module:
    """Build the Llama/Mistral/Phi model described by ``hf`` (a config.json) and load ``directory``'s weights.

    Every missing, unexpected or mis-shaped tensor is reported at once; a
    ``model_type`` other than ``llama``, ``mistral`` or ``phi`` is a
    :class:`ConfigError` listing the supported ones. Weights are loaded as in
    :func:`llm_model.import_hf`: memory-mapped, in their stored dtype unless
    ``dtype`` is given, after a memory check (``force`` skips it).
    """
    path = directory / "config.json"
    model_type = hf.get("model_type")
    family = _FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise ConfigError(
            f"{path}: model_type {model_type!r} is not supported; "
            f"expected one of {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    config = family.config_from_hf(hf, path)
    weights = read_hf_weights(directory)
    tensors = {
        n.removeprefix("model."): t for n, t in weights.tensors.items() if not n.endswith(_IGNORED_SUFFIXES)
    }
    if config.tie_weights:
        tensors.pop("lm_head.weight", None)  # a stored copy of embed_tokens
    return load_new_model(
        family.model_class,
        config,
        tensors,
        what=f"{path}: the model's parameters",
        where=weights.where,
        names=family.names(config),
        dtype=dtype,
        force=force,
    )


def export_hf_family(model: nn.Module, out_dir: str | os.PathLike[str]) -> Path:
    """Write a Llama, Mistral or Phi model in the Hugging Face layout: config.json + model.safetensors.

    ``transformers.LlamaForCausalLM`` / ``MistralForCausalLM`` / ``PhiForCausalLM``
    ``.from_pretrained(out_dir)`` loads the result. Tensors keep the model's dtype.
    """
    from safetensors.torch import save_file

    from llm_core.config_io import write_json_atomic

    config: Any = getattr(model, "config", None)
    family = _family_of(config)
    hf_json = hf_family_config(model)  # checks the RoPE scaling before anything is written
    ours, _ = unique_tensors(model)
    names = family.names(config)
    tensors = {
        (theirs if theirs.startswith("lm_head.") else f"model.{theirs}"): ours[name].detach().to("cpu")
        for name, theirs in names.items()
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    write_json_atomic(out / "config.json", hf_json)
    return out
