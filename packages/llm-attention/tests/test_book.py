"""Chapter 3's progression: book values and agreement between the steps."""

from __future__ import annotations

import pytest
import torch

from llm_attention import (
    BookMultiHeadAttention,
    CausalAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    simplified_self_attention,
)
from llm_core.errors import ConfigError

# "Your journey starts with one step", 3-d embeddings from section 3.3.
INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],  # Your
        [0.55, 0.87, 0.66],  # journey
        [0.57, 0.85, 0.64],  # starts
        [0.22, 0.58, 0.33],  # with
        [0.77, 0.25, 0.10],  # one
        [0.05, 0.80, 0.55],  # step
    ]
)


def test_simplified_attention_matches_the_book() -> None:
    context = simplified_self_attention(INPUTS)
    assert context.shape == (6, 3)
    torch.testing.assert_close(context[1], torch.tensor([0.4419, 0.6515, 0.5683]), atol=5e-5, rtol=0)
    # the book's printed first row
    torch.testing.assert_close(context[0], torch.tensor([0.4421, 0.5931, 0.5790]), atol=5e-5, rtol=0)


def test_simplified_attention_is_a_convex_combination() -> None:
    weights = torch.softmax(INPUTS @ INPUTS.T, dim=-1)
    assert torch.allclose(weights.sum(-1), torch.ones(6))
    assert torch.allclose(simplified_self_attention(INPUTS), weights @ INPUTS)


def test_self_attention_v1_book_value() -> None:
    torch.manual_seed(123)
    sa_v1 = SelfAttentionV1(3, 2)
    out = sa_v1(INPUTS)
    assert out.shape == (6, 2)
    # section 3.4.2 prints this row for torch.manual_seed(123)
    torch.testing.assert_close(out[1], torch.tensor([0.3061, 0.8210]), atol=5e-4, rtol=0)


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_v2_with_v1_weights_matches_v1(qkv_bias: bool) -> None:
    torch.manual_seed(0)
    v1, v2 = SelfAttentionV1(3, 4), SelfAttentionV2(3, 4, qkv_bias=qkv_bias)
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(v2, name).weight.copy_(getattr(v1, name).T)
            if qkv_bias:
                getattr(v2, name).bias.zero_()
    torch.testing.assert_close(v2(INPUTS), v1(INPUTS))


def test_causal_attention_first_row_sees_only_itself() -> None:
    torch.manual_seed(0)
    ca = CausalAttention(3, 2, context_length=6, dropout=0.0)
    batch = torch.stack((INPUTS, INPUTS))  # (2, 6, 3)
    out = ca(batch)
    assert out.shape == (2, 6, 2)
    torch.testing.assert_close(out[:, 0], ca.W_value(INPUTS[0]).expand(2, 2))
    changed = batch.clone()
    changed[:, 4:] = 9.0
    torch.testing.assert_close(ca(changed)[:, :4], out[:, :4])


def test_causal_attention_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    ca = CausalAttention(3, 2, context_length=6, dropout=0.5)
    batch = INPUTS[None]
    ca.eval()
    reference = ca(batch)
    ca.train()
    torch.manual_seed(1)
    assert not torch.allclose(ca(batch), reference)


def _wrapper_and_mha(
    num_heads: int, head_dim: int
) -> tuple[MultiHeadAttentionWrapper, BookMultiHeadAttention]:
    wrapper = MultiHeadAttentionWrapper(3, head_dim, context_length=8, dropout=0.0, num_heads=num_heads)
    mha = BookMultiHeadAttention(3, num_heads * head_dim, context_length=8, dropout=0.0, num_heads=num_heads)
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            stacked = torch.cat([getattr(head, name).weight for head in wrapper.heads], dim=0)
            getattr(mha, name).weight.copy_(stacked)
        mha.out_proj.weight.copy_(torch.eye(num_heads * head_dim))
        mha.out_proj.bias.zero_()
    return wrapper, mha


@pytest.mark.parametrize(("num_heads", "head_dim"), [(1, 4), (2, 2), (4, 3)])
def test_wrapper_equals_split_head_mha(num_heads: int, head_dim: int) -> None:
    torch.manual_seed(0)
    wrapper, mha = _wrapper_and_mha(num_heads, head_dim)
    batch = torch.stack((INPUTS, INPUTS.flip(0)))  # (2, 6, 3)
    out = mha(batch)
    assert out.shape == (2, 6, num_heads * head_dim)
    torch.testing.assert_close(out, wrapper(batch))


def test_book_mha_rejects_heads_that_do_not_divide() -> None:
    with pytest.raises(
        ConfigError, match=r"n_heads=5 does not divide d_out=64; choose n_heads from 1, 2, 4, 8"
    ):
        BookMultiHeadAttention(3, 64, context_length=8, dropout=0.0, num_heads=5)
