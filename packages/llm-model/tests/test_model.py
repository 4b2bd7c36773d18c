"""GPTModel: shapes, causality, KV cache, left padding, backends."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from llm_core.errors import ConfigError
from llm_model import GPTModel


def test_forward_maps_ids_to_logits(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (2, 10))
    assert model(idx).shape == (2, 10, 97)
    assert model.architecture == "gpt2" and model.config.n_layers == 2
    assert model.out_head.bias is None


def test_causal_changing_a_later_token_leaves_earlier_logits_unchanged(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 12))
    changed = idx.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 97
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_naive_and_sdpa_backends_agree(make_model: Callable[..., GPTModel]) -> None:
    idx = torch.randint(0, 97, (2, 16))
    naive, sdpa = make_model(attention="naive"), make_model(attention="sdpa")
    torch.testing.assert_close(naive(idx), sdpa(idx), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [None, 2, 1])
def test_kv_cache_decoding_equals_full_forward(
    make_model: Callable[..., GPTModel], n_kv_heads: int | None
) -> None:
    model = make_model(n_kv_heads=n_kv_heads)
    idx = torch.randint(0, 97, (2, 12))
    full = model(idx)
    cache = model.new_cache(2)
    steps = [model(idx[:, :5], cache=cache)] + [model(idx[:, i : i + 1], cache=cache) for i in range(5, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 12


def test_left_padding_gives_the_unpadded_logits(model: GPTModel) -> None:
    idx = torch.randint(0, 97, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), idx], dim=1)
    mask = torch.tensor([[False] * 3 + [True] * 6])
    torch.testing.assert_close(model(padded, padding_mask=mask)[:, 3:], model(idx), atol=1e-5, rtol=1e-5)


def test_input_longer_than_context_is_an_error(model: GPTModel) -> None:
    with pytest.raises(ConfigError, match="exceeds context_length=32; crop the input"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_dropout_is_active_in_training_only(make_model: Callable[..., GPTModel]) -> None:
    model = make_model(drop_rate=0.5)
    idx = torch.randint(0, 97, (1, 8))
    model.train()
    assert not torch.equal(model(idx), model(idx))
    model.eval()
    assert torch.equal(model(idx), model(idx))


def test_new_cache_matches_the_config(model: GPTModel) -> None:
    cache = model.new_cache(3)
    assert (cache.n_layers, cache.batch_size, cache.max_len) == (2, 3, 32)
