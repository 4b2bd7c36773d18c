"""Conformance checks for every registered architecture (run by ``pytest --scratchlm-conformance``).

Each check builds a tiny, dropout-free instance of the architecture: the
entry's ``tiny`` (or ``<name>-tiny``) preset when it has one, else ``config_class`` defaults, with
the usual size fields (``vocab_size``, ``context_length``, ``emb_dim``,
``n_heads``, ``n_layers``, ``drop_rate``) shrunk where the config has them.
What an architecture must provide beyond ``forward(idx)``: ``forward(idx,
cache=...)`` with ``new_cache(batch_size)``, and a dataclass ``model.config``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import torch
from torch import nn

from llm_core import get_registry
from llm_core.config_io import config_from_dict
from llm_core.conformance import check

__all__ = [
    "gradients_reach_every_parameter",
    "is_causal",
    "kv_cache_matches_full_forward",
    "parameter_count_matches",
    "save_load_round_trip",
    "tiny_instance",
]

_TINY = {"vocab_size": 61, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0}


def tiny_instance(name: str, model_class: Any, *, seed: int = 0) -> Any:
    """A small, seeded, eval-mode instance of the architecture registered as ``name``."""
    entry = get_registry("architectures")[name]
    presets = entry.meta.get("presets") or {}
    fields = {f.name for f in dataclasses.fields(model_class.config_class)}
    values = dict(presets.get("tiny") or presets.get(f"{name}-tiny") or {})
    values.update({k: v for k, v in _TINY.items() if k in fields})
    config = config_from_dict(model_class.config_class, values, source=f"{name} tiny conformance config")
    torch.manual_seed(seed)
    model = model_class(config)
    if getattr(model, "architecture", None) != name:
        model.architecture = name
    return model.eval()


def _ids(model: Any, t: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (2, t), generator=generator)


@check("architectures")
def is_causal(name: str, obj: Any) -> None:
    """Logits at a position never depend on later tokens."""
    model = tiny_instance(name, obj)
    idx = _ids(model, 10)
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % model.config.vocab_size
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert a.shape == (2, 10, model.config.vocab_size), f"{name}: logits shape {tuple(a.shape)}"
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5), f"{name}: earlier logits changed with later tokens"
    assert not torch.allclose(a[:, 6:], b[:, 6:]), f"{name}: logits ignore the tokens"


@check("architectures")
def kv_cache_matches_full_forward(name: str, obj: Any) -> None:
    """Prefill + one-token decoding steps with a KV cache give the full forward's logits."""
    model = tiny_instance(name, obj)
    idx = _ids(model, 10)
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache(2)
        steps = [model(idx[:, :4], cache=cache)] + [
            model(idx[:, i : i + 1], cache=cache) for i in range(4, 10)
        ]
    got = torch.cat(steps, dim=1)
    assert torch.allclose(got, full, atol=1e-4), (
        f"{name}: cached decoding differs from the full forward by {float((got - full).abs().max()):.2e}"
    )


@check("architectures")
def save_load_round_trip(name: str, obj: Any) -> None:
    """save_pretrained then load_pretrained restores the architecture, the config and the logits."""
    from llm_model.checkpoint import load_pretrained, save_pretrained

    model = tiny_instance(name, obj)
    idx = _ids(model, 8)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, f"{tmp}/ckpt")
        loaded = load_pretrained(f"{tmp}/ckpt")
    assert type(loaded) is type(model), f"{name}: loaded a {type(loaded).__name__}"
    assert loaded.architecture == name and loaded.config == model.config, f"{name}: config changed"
    with torch.no_grad():
        assert torch.equal(loaded(idx), model(idx)), f"{name}: logits changed after save/load"


@check("architectures")
def gradients_reach_every_parameter(name: str, obj: Any) -> None:
    """One backward pass of the next-token loss gives every trainable parameter a non-zero gradient."""
    model = tiny_instance(name, obj).train()
    idx = _ids(model, 9)
    logits = model(idx[:, :-1])
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten())
    loss.backward()
    dead = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad
        and (p.grad is None or not torch.any(p.grad != 0) or not torch.isfinite(p.grad).all())
    ]
    assert not dead, f"{name}: no (finite, non-zero) gradient for {', '.join(dead)}"


@check("architectures")
def parameter_count_matches(name: str, obj: Any) -> None:
    """model-info's count equals sum(p.numel()), also when built on the meta device as model-info does."""
    from llm_model.gpt import model_info

    model = tiny_instance(name, obj)
    expected = sum(p.numel() for p in model.parameters())
    assert model_info(model)["parameters"] == expected, f"{name}: model_info disagrees with sum(p.numel())"
    with torch.device("meta"):
        shapes_only = obj(model.config)
    assert model_info(shapes_only)["parameters"] == expected, f"{name}: the meta-device count differs"
