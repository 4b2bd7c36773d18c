"""GPT-2 weights in the Hugging Face layout: import (chapter 5's ``load_weights_into_gpt``) and export.

The Hugging Face GPT-2 (``GPT2LMHeadModel``) differs from ours in layout only:

* its linear layers are ``Conv1D`` modules whose weights are stored
  ``(in_features, out_features)``: transposed relative to ``nn.Linear``;
* the query/key/value projections are fused into one ``c_attn`` of width
  ``3 * emb_dim`` (queries, then keys, then values);
* ``lm_head`` is tied to the token embedding ``wte`` (and usually not stored);
* OpenAI's weights have query/key/value biases (``qkv_bias=True``);
* older files carry the causal-mask buffers ``attn.bias``/``attn.masked_bias``,
  which are not weights and are ignored.

``import_hf``/``export_hf`` hand Llama, Mistral and Phi files (by
``model_type``) and models to :mod:`llm_model.hf_families`.

``transformers`` is never imported here: files are read and written with
safetensors. Downloading by hub repo id needs the optional ``hub`` extra.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_core.errors import CheckpointError, ConfigError, MissingDependencyError
from llm_model.checkpoint import check_tensors
from llm_model.config import GPTConfig
from llm_model.gpt import GPTModel
from llm_model.hf_files import read_hf_weights
from llm_model.loading import build_on_meta, check_memory, fill, parameter_bytes, stored_dtype

__all__ = [
    "HUB_ALIASES",
    "HUB_FILES",
    "export_hf",
    "hf_config",
    "import_hf",
    "own_tokenizer",
    "resolve_source",
]

#: Short names accepted for OpenAI's GPT-2 repositories on the Hugging Face hub.
HUB_ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
#: The files of a hub repository that are downloaded: config, weights (single or sharded), tokenizer.
HUB_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def resolve_source(src: str | os.PathLike[str]) -> Path:
    """A local directory, or a hub repo id downloaded (config + safetensors only) with huggingface_hub."""
    path = Path(src).expanduser()
    if path.is_dir():
        return path
    text = str(src)
    if path.exists():
        raise CheckpointError(
            f"{src}: expected a directory with config.json and model.safetensors, found a file"
        )
    repo_id = HUB_ALIASES.get(text, text)
    looks_local = text.startswith((".", "/", "~")) or text.count("/") != 1
    if looks_local and text not in HUB_ALIASES:
        raise CheckpointError(
            f"{src}: expected a local directory (config.json + model.safetensors) or a hub repo id "
            f"such as {', '.join(HUB_ALIASES)} or openai-community/gpt2, found neither"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingDependencyError(
            f"downloading '{repo_id}' from the Hugging Face hub needs huggingface_hub; "
            "install it with `pip install 'llm-model[hub]'`, or pass a local directory"
        ) from None
    return Path(snapshot_download(repo_id, allow_patterns=list(HUB_FILES)))


def _read_hf_json(directory: Path) -> dict[str, Any]:
    """The Hugging Face ``config.json`` of ``directory`` as a dict."""
    path = directory / "config.json"
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: expected a Hugging Face config.json, found no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: expected a JSON object, found unreadable content ({exc})") from None
    if not isinstance(hf, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(hf).__name__}")
    return hf


def _config_from_hf(hf: dict[str, Any], path: Path) -> GPTConfig:
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ConfigError(f"{path}: expected model_type 'gpt2', found {hf.get('model_type')!r}")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in _TANH_GELUS:
        raise ConfigError(
            f"{path}: expected a tanh-approximated GELU ({', '.join(_TANH_GELUS)}), found {activation!r}"
        )
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if abs(eps - 1e-5) > 1e-12:
        raise ConfigError(f"{path}: expected layer_norm_epsilon 1e-05 (GPT-2's), found {eps!r}")
    n_embd = hf.get("n_embd", 768)
    if hf.get("n_inner") not in (None, 4 * n_embd):
        raise ConfigError(
            f"{path}: expected n_inner null or {4 * n_embd} (4 * n_embd), found {hf['n_inner']!r}"
        )
    if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights", True) is not True:
        raise ConfigError(f"{path}: expected GPT-2's attention scaling (1/sqrt(head_dim) only)")
    try:
        return GPTConfig(
            vocab_size=hf.get("vocab_size", hf.get("n_vocab", 50257)),
            context_length=hf.get("n_positions", hf.get("n_ctx", 1024)),
            emb_dim=n_embd,
            n_heads=hf.get("n_head", 12),
            n_layers=hf.get("n_layer", 12),
            drop_rate=float(hf.get("resid_pdrop", 0.1)),
            qkv_bias=True,
            tie_weights=bool(hf.get("tie_word_embeddings", True)),
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _expected_hf_shapes(config: GPTConfig) -> dict[str, torch.Size]:
    e, v, p = config.emb_dim, config.vocab_size, config.context_length
    shapes = {"wte.weight": (v, e), "wpe.weight": (p, e), "ln_f.weight": (e,), "ln_f.bias": (e,)}
    for i in range(config.n_layers):
        h = f"h.{i}."
        shapes |= {
            h + "ln_1.weight": (e,),
            h + "ln_1.bias": (e,),
            h + "attn.c_attn.weight": (e, 3 * e),
            h + "attn.c_attn.bias": (3 * e,),
            h + "attn.c_proj.weight": (e, e),
            h + "attn.c_proj.bias": (e,),
            h + "ln_2.weight": (e,),
            h + "ln_2.bias": (e,),
            h + "mlp.c_fc.weight": (e, 4 * e),
            h + "mlp.c_fc.bias": (4 * e,),
            h + "mlp.c_proj.weight": (4 * e, e),
            h + "mlp.c_proj.bias": (e,),
        }
    if not config.tie_weights:
        shapes["lm_head.weight"] = (v, e)
    return {name: torch.Size(shape) for name, shape in shapes.items()}


def _hf_to_ours(hf: Mapping[str, torch.Tensor], config: GPTConfig) -> dict[str, torch.Tensor]:
    """Map Hugging Face tensor names/layouts (prefix stripped) to GPTModel's state dict."""
    e = config.emb_dim
    ours = {
        "tok_emb.weight": hf["wte.weight"],
        "pos_emb.weight": hf["wpe.weight"],
        "final_norm.scale": hf["ln_f.weight"],
        "final_norm.shift": hf["ln_f.bias"],
    }
    for i in range(config.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        q_w, k_w, v_w = hf[h + "attn.c_attn.weight"].split(e, dim=1)  # 3 x (e_in, e_out)
        q_b, k_b, v_b = hf[h + "attn.c_attn.bias"].split(e, dim=0)  # 3 x (e,)
        ours |= {
            b + "norm1.scale": hf[h + "ln_1.weight"],
            b + "norm1.shift": hf[h + "ln_1.bias"],
            b + "att.W_query.weight": q_w.T,
            b + "att.W_key.weight": k_w.T,
            b + "att.W_value.weight": v_w.T,
            b + "att.W_query.bias": q_b,
            b + "att.W_key.bias": k_b,
            b + "att.W_value.bias": v_b,
            b + "att.out_proj.weight": hf[h + "attn.c_proj.weight"].T,
            b + "att.out_proj.bias": hf[h + "attn.c_proj.bias"],
            b + "norm2.scale": hf[h + "ln_2.weight"],
            b + "norm2.shift": hf[h + "ln_2.bias"],
            b + "ff.layers.0.weight": hf[h + "mlp.c_fc.weight"].T,
            b + "ff.layers.0.bias": hf[h + "mlp.c_fc.bias"],
            b + "ff.layers.2.weight": hf[h + "mlp.c_proj.weight"].T,
            b + "ff.layers.2.bias": hf[h + "mlp.c_proj.bias"],
        }
    if not config.tie_weights:
        ours["out_head.weight"] = hf["lm_head.weight"]
    return ours


def import_hf(
    src: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    force: bool = False,
) -> nn.Module:
    """Load weights in the Hugging Face layout into the matching architecture (eval mode).

    ``src``: a local directory with ``config.json`` and the weights as
    published (``model.safetensors``, sharded safetensors with their
    ``model.safetensors.index.json``, or, without safetensors,
    ``pytorch_model.bin``; see :mod:`llm_model.hf_files`), or a hub repo id
    (``openai-community/gpt2`` … ``gpt2-xl``, or the short ``gpt2``,
    ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``), which needs the ``hub`` extra.
    ``config.json``'s ``model_type`` picks the architecture: ``gpt2``
    (:class:`GPTModel`), ``llama``, ``mistral`` or ``phi`` (see
    :mod:`llm_model.hf_families`). Every missing or mis-shaped tensor is reported at once.

    The model is built on the ``meta`` device and its parameters are the
    memory-mapped tensors of the files (:mod:`llm_model.loading`): they keep
    their stored dtype unless ``dtype`` is given. The parameter memory is checked
    against the memory available first (``force`` skips that).
    """
    directory = resolve_source(src)
    hf = _read_hf_json(directory)
    model_type = hf.get("model_type", "gpt2")
    if model_type != "gpt2":
        from llm_model.hf_families import import_hf_family

        return import_hf_family(directory, hf, dtype=dtype, force=force)
    config = _config_from_hf(hf, directory / "config.json")
    weights = read_hf_weights(directory)
    tensors = {name.removeprefix("transformer."): t for name, t in weights.tensors.items()}
    tensors = {n: t for n, t in tensors.items() if not n.endswith(_IGNORED_SUFFIXES)}
    if config.tie_weights:
        tensors.pop("lm_head.weight", None)  # a stored copy of wte
    stored = stored_dtype(tensors)
    name = str(dtype or stored).removeprefix("torch.")
    check_memory(
        parameter_bytes(GPTModel, config, dtype or stored),
        what=f"{directory / 'config.json'}: the model's parameters ({name})",
        force=force,
    )
    expected = {
        name: torch.empty(shape, dtype=stored, device="meta")
        for name, shape in _expected_hf_shapes(config).items()
    }
    check_tensors(expected, tensors, where=weights.where)
    model = build_on_meta(lambda: GPTModel(config))
    return fill(
        model,
        _hf_to_ours(tensors, config),
        dtype=dtype,
        where=weights.where,
        factory=lambda: GPTModel(config),
    ).eval()


#: GPT-2's BPE as tiktoken knows it: a tokenizer.json with this many tokens and this EOS is that one.
_GPT2_VOCAB, _GPT2_EOS = 50257, "<|endoftext|>"


def own_tokenizer(directory: Path, model: nn.Module) -> tuple[str | None, dict[str, Path]]:
    """The tokenizer an imported checkpoint records, and the files to copy into it (name -> path).

    A ``tokenizer.json`` in ``directory`` is loaded first (a file that does not
    parse, a chat template that does not compile or raises on a one-message
    conversation, or more tokens than the model has are each one error), then
    kept with its ``tokenizer_config.json``, ``generation_config.json`` and
    ``chat_template.jinja``. GPT-2 weights with OpenAI's own BPE (or no
    tokenizer.json) record ``gpt2``: the offline tiktoken tokenizer.
    """
    from llm_core import load_tokenizer
    from llm_model.checkpoint import OWN_TOKENIZER_FILES
    from llm_model.gpt import model_config

    gpt2 = getattr(model, "architecture", None) == "gpt2"
    path = directory / OWN_TOKENIZER_FILES[0]
    if not path.is_file():
        return ("gpt2" if gpt2 else None), {}
    tok = load_tokenizer(str(path))
    if gpt2 and tok.n_vocab == _GPT2_VOCAB and tok.encode(_GPT2_EOS, add_special_tokens=False) == [50256]:
        return "gpt2", {}
    vocab = model_config(model).vocab_size
    if tok.n_vocab > vocab:
        raise CheckpointError(
            f"{path}: the tokenizer has {tok.n_vocab} tokens but the model's vocab_size is {vocab}; "
            "expected the tokenizer of these weights"
        )
    if getattr(tok, "chat_template", None) is not None:
        tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True)
    files = {name: directory / name for name in OWN_TOKENIZER_FILES if (directory / name).is_file()}
    return OWN_TOKENIZER_FILES[0], files


def hf_config(config: GPTConfig) -> dict[str, Any]:
    """The Hugging Face ``config.json`` of a GPT-2 with ``config``'s shape."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.context_length,
        "n_ctx": config.context_length,
        "n_embd": config.emb_dim,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.drop_rate,
        "embd_pdrop": config.drop_rate,
        "attn_pdrop": config.drop_rate,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": config.tie_weights,
        "bos_token_id": 50256 if config.vocab_size > 50256 else None,
        "eos_token_id": 50256 if config.vocab_size > 50256 else None,
        "use_cache": True,
        "torch_dtype": "float32",
    }


def export_hf(model: nn.Module, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``model`` in the Hugging Face layout of its family (``config.json`` + ``model.safetensors``).

    A GPT-2 model: ``transformers.GPT2LMHeadModel.from_pretrained(out_dir)`` loads the result.
    Llama, Mistral and Phi models: see :func:`llm_model.hf_families.export_hf_family`.
    Models without query/key/value biases get zero biases (Hugging Face's
    ``Conv1D`` always has one); grouped-query models cannot be exported.
    """
    from safetensors.torch import save_file

    from llm_core.config_io import write_json_atomic

    config: Any = getattr(model, "config", None)
    if not isinstance(config, GPTConfig):
        from llm_model.hf_families import export_hf_family

        return export_hf_family(model, out_dir)
    if config.kv_heads != config.n_heads:
        raise ConfigError(
            f"export_hf: GPT-2 has one key/value head per query head, found n_kv_heads={config.n_kv_heads} "
            f"for n_heads={config.n_heads}; only models with n_kv_heads null can be exported"
        )
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    e = config.emb_dim
    hf: dict[str, torch.Tensor] = {
        "transformer.wte.weight": sd["tok_emb.weight"],
        "transformer.wpe.weight": sd["pos_emb.weight"],
        "transformer.ln_f.weight": sd["final_norm.scale"],
        "transformer.ln_f.bias": sd["final_norm.shift"],
    }
    for i in range(config.n_layers):
        h, b = f"transformer.h.{i}.", f"trf_blocks.{i}."
        q_w, k_w, v_w = (sd[b + f"att.{n}.weight"] for n in ("W_query", "W_key", "W_value"))
        zero = torch.zeros(e)
        q_b, k_b, v_b = (sd.get(b + f"att.{n}.bias", zero) for n in ("W_query", "W_key", "W_value"))
        hf |= {
            h + "ln_1.weight": sd[b + "norm1.scale"],
            h + "ln_1.bias": sd[b + "norm1.shift"],
            h + "attn.c_attn.weight": torch.cat([q_w, k_w, v_w], dim=0).T,  # (e, 3e)
            h + "attn.c_attn.bias": torch.cat([q_b, k_b, v_b]),
            h + "attn.c_proj.weight": sd[b + "att.out_proj.weight"].T,
            h + "attn.c_proj.bias": sd[b + "att.out_proj.bias"],
            h + "ln_2.weight": sd[b + "norm2.scale"],
            h + "ln_2.bias": sd[b + "norm2.shift"],
            h + "mlp.c_fc.weight": sd[b + "ff.layers.0.weight"].T,
            h + "mlp.c_fc.bias": sd[b + "ff.layers.0.bias"],
            h + "mlp.c_proj.weight": sd[b + "ff.layers.2.weight"].T,
            h + "mlp.c_proj.bias": sd[b + "ff.layers.2.bias"],
        }
    if not config.tie_weights:
        hf["lm_head.weight"] = sd["out_head.weight"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in hf.items()}, str(out / "model.safetensors"), metadata={"format": "pt"}
    )
    write_json_atomic(out / "config.json", hf_config(config))
    return out
