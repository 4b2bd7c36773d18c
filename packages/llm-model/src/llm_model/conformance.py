"""Conformance checks for every registered architecture (run by ``pytest --scratchlm-conformance``).

Each check builds a tiny, dropout-free instance of the architecture: the
entry's ``tiny`` (or ``<name>-tiny``) preset when it has one, else ``config_class`` defaults, with
the usual size fields (``vocab_size``, ``context_length``, ``emb_dim``,
``n_heads``, ``n_layers``, ``drop_rate``) shrunk where the config has them.
What an architecture must provide beyond ``forward(idx)``: ``forward(idx,
cache=...)`` with ``new_cache(batch_size)``, and a dataclass ``model.config``.
An architecture that declares ``accepts_padding_mask = True`` (every model
built on llm_model's ``GPTModel`` or ``RotaryDecoder`` does) is also checked
for left padding; the blocks in a ``trf_blocks`` list for the block contract
(:class:`llm_model.Block`); and :func:`llm_model.init_weights` must reach every
parameter of every architecture.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from typing import Any

import torch
from torch import nn

from llm_core import get_registry
from llm_core.config_io import config_from_dict
from llm_core.conformance import NotApplicable, check

__all__ = [
    "blocks_follow_the_block_contract",
    "gradients_reach_every_parameter",
    "init_weights_covers_every_parameter",
    "is_causal",
    "kv_cache_matches_full_forward",
    "left_padding_matches_unpadded_rows",
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


@check("architectures")
def left_padding_matches_unpadded_rows(name: str, obj: Any) -> None:
    """A left-padded batch gives each row its logits alone (architectures with accepts_padding_mask)."""
    if not getattr(obj, "accepts_padding_mask", False):
        raise NotApplicable("the architecture does not declare accepts_padding_mask = True")
    model = tiny_instance(name, obj)
    idx = _ids(model, 10)  # row 0: 3 padding tokens, then 7 real ones; row 1: 10 real ones
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, :3] = False
    with torch.no_grad():
        batch = model(idx, padding_mask=mask)  # (2, 10, vocab)
        alone = [model(idx[:1, 3:]), model(idx[1:])]
        cache = model.new_cache(2)
        steps = [model(idx[:, :8], cache=cache, padding_mask=mask[:, :8])]
        steps += [model(idx[:, i : i + 1], cache=cache, padding_mask=mask[:, : i + 1]) for i in (8, 9)]
    cached = torch.cat(steps, dim=1)
    for got, what in ((batch, "the padded batch"), (cached, "cached decoding of the padded batch")):
        for row, (want, start) in enumerate(zip(alone, (3, 0), strict=True)):
            diff = float((got[row, start:] - want[0]).abs().max())
            assert diff <= 1e-4, f"{name}: row {row} of {what} differs from the row alone by {diff:.2e}"


@check("architectures")
def init_weights_covers_every_parameter(name: str, obj: Any) -> None:
    """llm_model.init_weights(model, scheme) sets every parameter, for each scheme."""
    from llm_model.init import INIT_SCHEMES, init_weights

    model = tiny_instance(name, obj)
    for scheme in INIT_SCHEMES:
        with torch.no_grad():
            for param in model.parameters():
                param.fill_(float("nan"))
        init_weights(model, scheme)
        missed = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
        assert not missed, f"{name}: init_weights(model, {scheme!r}) left {', '.join(missed)} unset"


@check("architectures")
def blocks_follow_the_block_contract(name: str, obj: Any) -> None:
    """Every block in trf_blocks takes forward(x, *, cache, padding_mask, positions) and keeps x's shape."""
    model = tiny_instance(name, obj)
    blocks = getattr(model, "trf_blocks", None)
    if blocks is None:
        raise NotApplicable("the model has no trf_blocks")
    emb_dim = model.config.emb_dim
    x = torch.randn(2, 5, emb_dim, generator=torch.Generator().manual_seed(2))  # (b, t, emb_dim)
    mask = torch.ones(2, 5, dtype=torch.bool)
    for i, block in enumerate(blocks):
        try:
            inspect.signature(block.forward).bind(x, cache=None, padding_mask=mask, positions=None)
        except TypeError as exc:
            raise AssertionError(
                f"{name}: trf_blocks[{i}] ({type(block).__name__}).forward does not take "
                f"(x, *, cache=None, padding_mask=None, positions=None): {exc}"
            ) from None
        with torch.no_grad():
            y = block(x, cache=None, padding_mask=mask, positions=None)
        assert y.shape == x.shape, f"{name}: trf_blocks[{i}] maps {tuple(x.shape)} to {tuple(y.shape)}"
