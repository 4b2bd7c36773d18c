"""The book's LayerNorm and GELU equal torch's; blocks keep shapes."""

from __future__ import annotations

import pytest
import torch

from llm_model import GELU, FeedForward, GPTConfig, LayerNorm, TransformerBlock
from llm_model.blocks import MultiHeadAttention


def test_layernorm_equals_torch() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16) * 4 + 2
    ours, ref = LayerNorm(16), torch.nn.LayerNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.scale.normal_()
        ours.shift.normal_()
        ref.weight.copy_(ours.scale)
        ref.bias.copy_(ours.shift)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_layernorm_normalises_to_zero_mean_unit_variance() -> None:
    out = LayerNorm(8)(torch.randn(4, 8) * 10 + 3)
    torch.testing.assert_close(out.mean(-1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)


def test_gelu_equals_torch_tanh_approximation() -> None:
    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(GELU()(x), torch.nn.GELU(approximate="tanh")(x), atol=1e-6, rtol=1e-6)


def test_feedforward_and_block_keep_the_shape() -> None:
    config = GPTConfig(vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=1, drop_rate=0.0)
    x = torch.randn(2, 7, 32)
    ff = FeedForward(config)
    assert ff(x).shape == (2, 7, 32)
    assert ff.layers[0].out_features == 4 * 32
    block = TransformerBlock(config)
    assert isinstance(block.att, MultiHeadAttention)
    assert block(x).shape == (2, 7, 32)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_block_uses_the_configured_backend(backend: str) -> None:
    config = GPTConfig(vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=1, attention=backend)
    assert TransformerBlock(config).att.backend == backend
