"""The book's LayerNorm and GELU equal the book's formulas (forward and gradients); blocks keep shapes."""

from __future__ import annotations

import math

import pytest
import torch

from llm_model import GELU, FeedForward, GPTConfig, LayerNorm, TransformerBlock
from llm_model.blocks import MultiHeadAttention


def book_layernorm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float) -> torch.Tensor:
    """Chapter 4's LayerNorm, written out: the naive reference."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return scale * (x - mean) / torch.sqrt(var + eps) + shift


def book_gelu(x: torch.Tensor) -> torch.Tensor:
    """Chapter 4's GELU (tanh approximation), written out."""
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def test_layernorm_equals_the_book_formula_and_its_gradients() -> None:
    torch.manual_seed(0)
    x = (torch.randn(3, 5, 16) * 4 + 2).requires_grad_()
    ours = LayerNorm(16)
    with torch.no_grad():
        ours.scale.normal_()
        ours.shift.normal_()
    ref_x = x.detach().clone().requires_grad_()
    ref_scale = ours.scale.detach().clone().requires_grad_()
    ref_shift = ours.shift.detach().clone().requires_grad_()
    out, ref = ours(x), book_layernorm(ref_x, ref_scale, ref_shift, 1e-5)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    for got, want in [
        (x.grad, ref_x.grad),
        (ours.scale.grad, ref_scale.grad),
        (ours.shift.grad, ref_shift.grad),
    ]:
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_layernorm_normalises_to_zero_mean_unit_variance() -> None:
    out = LayerNorm(8)(torch.randn(4, 8) * 10 + 3)
    torch.testing.assert_close(out.mean(-1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)


def test_gelu_equals_the_book_formula_and_its_gradient() -> None:
    x = torch.linspace(-6, 6, 1001, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_()
    out, ref = GELU()(x), book_gelu(ref_x)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, atol=1e-5, rtol=1e-5)


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
