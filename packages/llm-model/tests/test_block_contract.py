"""The block contract (llm_model.Block) and the config base every built-in architecture shares."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from llm_attention import MultiHeadAttention
from llm_core.errors import ConfigError
from llm_model import (
    Block,
    DecoderConfig,
    GPTConfig,
    LlamaConfig,
    MistralConfig,
    PhiConfig,
    build_model,
    causal_self_attention,
)

SMALL = {"vocab_size": 61, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2}
ARCHS = {
    "gpt2": {},
    "llama": {"hidden_dim": 48, "n_kv_heads": 2},
    "mistral": {"hidden_dim": 48, "n_kv_heads": 2, "sliding_window": 4},
    "phi": {"hidden_dim": 48, "partial_rotary_factor": 0.5},
}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_built_in_block_is_a_block_with_the_documented_parts(arch: str) -> None:
    model = build_model(arch, **SMALL, **ARCHS[arch])
    for block in model.trf_blocks:
        assert isinstance(block, Block)
        assert isinstance(block.att, MultiHeadAttention) and isinstance(block.ff, nn.Module)
        assert hasattr(block, "norm") or (hasattr(block, "norm1") and hasattr(block, "norm2"))
        assert block.residual_projections, "GPT-2's init needs the residual projections named"
        for path in block.residual_projections:
            assert isinstance(block.get_submodule(path), nn.Linear), path
        params = inspect.signature(type(block).forward).parameters
        assert list(params)[:2] == ["self", "x"]


@pytest.mark.parametrize("arch", ARCHS)
def test_a_block_called_with_a_cache_and_positions_matches_the_model_path(arch: str) -> None:
    """Calling the blocks by hand with the contract's keywords gives the model's own logits."""
    torch.manual_seed(0)
    model = build_model(arch, **SMALL, **ARCHS[arch], drop_rate=0.0).eval()
    idx = torch.randint(0, 61, (2, 6))
    mask = torch.tensor([[False, True, True, True, True, True], [True] * 6])
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # (b, t): real tokens counted
    with torch.no_grad():
        cache = model.new_cache(2)
        x = model._embed(idx, 0, positions)
        for i, block in enumerate(model.trf_blocks):
            x = block(x, cache=cache.layer(i), padding_mask=mask, positions=positions)
        by_hand = model.out_head(model.final_norm(x))
        assert torch.allclose(by_hand, model(idx, padding_mask=mask), atol=1e-5)


def test_the_base_block_names_its_missing_forward() -> None:
    with pytest.raises(NotImplementedError, match=r"Block must implement forward\(x, \*, cache"):
        Block()(torch.zeros(1, 2, 4))


def test_causal_self_attention_is_shaped_by_the_config() -> None:
    config = LlamaConfig(**SMALL, hidden_dim=48, n_kv_heads=2, drop_rate=0.1)
    att = causal_self_attention(config, qkv_bias=False, out_bias=False)
    assert (att.n_heads, att.n_kv_heads, att.head_dim, att.dropout_p) == (4, 2, 8, 0.1)
    assert att.W_query.bias is None and att.out_proj.bias is None


@pytest.mark.parametrize(
    "config_class", [GPTConfig, LlamaConfig, MistralConfig, PhiConfig], ids=lambda c: c.__name__
)
def test_every_config_shares_the_decoder_checks_and_properties(config_class: type) -> None:
    extra = {"partial_rotary_factor": 0.5} if config_class is PhiConfig else {}
    extra |= {"n_kv_heads": 2} if config_class is MistralConfig else {}
    config = config_class(**SMALL, **extra)
    assert isinstance(config, DecoderConfig)
    assert (config.head_dim, config.to_dict()["emb_dim"]) == (8, 32)
    with pytest.raises(ConfigError, match=r"n_heads=5 does not divide emb_dim=32; choose n_heads from 1, 2"):
        config_class(**{**SMALL, "n_heads": 5}, **extra)
    with pytest.raises(ConfigError, match=r"n_kv_heads=3 does not divide n_heads=4"):
        config_class(**{**SMALL, "n_kv_heads": 3}, **{k: v for k, v in extra.items() if k != "n_kv_heads"})
    with pytest.raises(ConfigError, match=r"drop_rate: expected a number in \[0, 1\), got 1.5"):
        config_class(**SMALL, **extra, drop_rate=1.5)
    with pytest.raises(ConfigError, match=r"tie_weights: expected true or false, got 'yes'"):
        config_class(**SMALL, **extra, tie_weights="yes")
