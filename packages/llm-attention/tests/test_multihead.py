"""The MultiHeadAttention module: backends, causality, KV cache, GQA, padding, RoPE, errors."""

from __future__ import annotations

import pytest
import torch

from llm_attention import BookMultiHeadAttention, KVCache, MultiHeadAttention, RotaryEmbedding
from llm_core.errors import ConfigError, PluginError

D, CTX = 32, 24


def _mha(seed: int = 0, **kwargs) -> MultiHeadAttention:
    torch.manual_seed(seed)
    n_heads = kwargs.pop("n_heads", 4)
    module = MultiHeadAttention(D, D, n_heads, context_length=CTX, **kwargs)
    return module.eval()


def _x(b: int = 2, t: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, D, generator=torch.Generator().manual_seed(seed))


def _rope(n_heads: int = 4) -> RotaryEmbedding:
    return RotaryEmbedding(D // n_heads, max_seq_len=CTX)


VARIANTS = {
    "mha": dict(),
    "gqa": dict(n_kv_heads=2),
    "mqa": dict(n_kv_heads=1),
    "window": dict(n_kv_heads=2, window=3),
    "rope": dict(n_kv_heads=2, rope=True),
    "rope-partial-window": dict(n_kv_heads=1, rope="partial", window=4, qkv_bias=True),
}


def _variant(name: str, **extra) -> MultiHeadAttention:
    options = dict(VARIANTS[name]) | extra
    rope = options.pop("rope", None)
    if rope == "partial":
        options["rope"] = RotaryEmbedding(D // 4, max_seq_len=CTX, rotary_dim=4)
    elif rope:
        options["rope"] = _rope()
    return _mha(**options)


def test_submodule_names_and_shapes_follow_the_book() -> None:
    module = _mha(n_kv_heads=2, out_bias=False)
    names = {name for name, _ in module.named_parameters()}
    assert names == {"W_query.weight", "W_key.weight", "W_value.weight", "out_proj.weight"}
    assert module.W_key.weight.shape == (2 * 8, D) and module.out_proj.bias is None
    assert module(_x()).shape == (2, 10, D)


@pytest.mark.parametrize("name", VARIANTS)
def test_naive_and_sdpa_modules_agree(name: str) -> None:
    naive, sdpa = _variant(name, backend="naive"), _variant(name, backend="sdpa")
    sdpa.load_state_dict(naive.state_dict())
    x = _x()
    assert (naive(x) - sdpa(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
@pytest.mark.parametrize("name", ["mha", "window", "rope-partial-window"])
def test_changing_a_future_token_never_changes_earlier_outputs(backend: str, name: str) -> None:
    module = _variant(name, backend=backend)
    x = _x()
    out = module(x)
    for t in (3, 7):
        changed = x.clone()
        changed[:, t] = torch.randn(D)
        new = module(changed)
        torch.testing.assert_close(new[:, :t], out[:, :t])
        assert not torch.allclose(new[:, t], out[:, t])


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("chunks", [[1] * 10, [4, 1, 1, 3, 1]], ids=["token-by-token", "prompt-then-tokens"])
def test_incremental_decoding_equals_full_forward(backend: str, name: str, chunks: list[int]) -> None:
    module = _variant(name, backend=backend)
    x = _x()
    full = module(x)
    cache = KVCache(1, 2, module.n_kv_heads, CTX, module.head_dim)
    outputs, start = [], 0
    for size in chunks:
        outputs.append(module(x[:, start : start + size], cache=cache[0]))
        start += size
    assert cache.length == 10
    torch.testing.assert_close(torch.cat(outputs, 1), full, atol=1e-5, rtol=1e-5)


def test_gqa_with_all_kv_heads_equals_the_books_mha() -> None:
    torch.manual_seed(0)
    book = BookMultiHeadAttention(D, D, context_length=CTX, dropout=0.0, num_heads=4)
    for backend in ("naive", "sdpa"):
        module = _mha(n_kv_heads=4, backend=backend)
        module.load_state_dict(book.state_dict(), strict=False)  # the book's mask buffer is extra
        torch.testing.assert_close(module(_x()), book(_x()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_gqa_equals_mha_with_repeated_key_value_weights(n_kv_heads: int) -> None:
    grouped = _mha(n_kv_heads=n_kv_heads)
    full = _mha(seed=5)
    group = 4 // n_kv_heads
    with torch.no_grad():
        full.W_query.load_state_dict(grouped.W_query.state_dict())
        full.out_proj.load_state_dict(grouped.out_proj.state_dict())
        for name in ("W_key", "W_value"):
            heads = getattr(grouped, name).weight.view(n_kv_heads, 8, D)
            getattr(full, name).weight.copy_(heads.repeat_interleave(group, 0).reshape(D, D))
    torch.testing.assert_close(grouped(_x()), full(_x()), atol=1e-5, rtol=1e-5)


def test_mqa_runs_and_has_fewer_parameters() -> None:
    mqa, mha = _mha(n_kv_heads=1), _mha()
    assert mqa(_x()).shape == (2, 10, D)
    assert sum(p.numel() for p in mqa.parameters()) < sum(p.numel() for p in mha.parameters())


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_padding_positions_do_not_affect_real_positions(backend: str) -> None:
    module = _variant("rope", backend=backend)
    x = _x(b=2, t=8)
    padding = torch.ones(2, 8, dtype=torch.bool)
    padding[0, :3] = False  # left padding
    padding[1, 6:] = False  # right padding
    out = module(x, padding_mask=padding)
    noisy = torch.where(padding[..., None], x, torch.randn_like(x) * 10)
    new = module(noisy, padding_mask=padding)
    torch.testing.assert_close(new[padding], out[padding])
    assert torch.isfinite(new).all()


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_dropout_in_train_mode_only(backend: str) -> None:
    module = _mha(backend=backend, dropout=0.5)
    x = _x()
    reference = module(x)
    torch.testing.assert_close(module(x), reference)
    module.train()
    torch.manual_seed(3)
    first = module(x)
    torch.manual_seed(3)
    torch.testing.assert_close(module(x), first)
    assert not torch.allclose(first, reference)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            dict(n_heads=5),
            ConfigError,
            r"n_heads=5 does not divide d_out=32; choose n_heads from 1, 2, 4, 8, 16, 32",
        ),
        (
            dict(n_kv_heads=3),
            ConfigError,
            r"n_kv_heads=3 does not divide n_heads=4; choose n_kv_heads from 1, 2, 4",
        ),
        (dict(dropout=1.5), ConfigError, r"dropout must be a probability in \[0, 1\)"),
        (dict(window=0), ConfigError, "window must be a positive integer"),
        (dict(rope=RotaryEmbedding(16, max_seq_len=CTX)), ConfigError, "rope was built for head_dim=16"),
        (dict(backend="flash9"), PluginError, r"unknown attention 'flash9'; available: .*naive, sdpa"),
    ],
)
def test_bad_config_raises_with_valid_choices(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        _mha(**kwargs)


def test_too_long_input_says_the_context_length() -> None:
    module = _mha()
    cache = KVCache(1, 2, 4, 64, 8)
    module(_x(t=20), cache=cache[0])
    with pytest.raises(ConfigError, match=r"20 cached \+ 5 new\) exceed context_length=24"):
        module(_x(t=5), cache=cache[0])


def test_third_party_backend_is_used(register_plugin) -> None:
    from llm_attention import naive_attention
    from llm_core import hookimpl

    calls = []

    def counting(q, k, v, *, causal, mask, dropout_p, window, training):
        calls.append(q.shape)
        return naive_attention(
            q, k, v, causal=causal, mask=mask, dropout_p=dropout_p, window=window, training=training
        )

    class Plugin:
        @hookimpl
        def register_attention(self, register):
            register("counting", counting)

    register_plugin(Plugin(), "counting-plugin")
    module = _mha(backend="counting")
    reference = _mha(backend="naive")
    torch.testing.assert_close(module(_x()), reference(_x()))
    assert calls == [(2, 4, 10, 8)]


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_cached_decoding_with_left_padding_equals_full_forward(backend: str) -> None:
    module = _variant("rope", backend=backend)
    x = _x(b=2, t=9)
    padding = torch.ones(2, 9, dtype=torch.bool)
    padding[0, :3] = False  # row 0 is a shorter, left-padded prompt
    full = module(x, padding_mask=padding)
    cache = KVCache(1, 2, module.n_kv_heads, CTX, module.head_dim)
    with torch.inference_mode():
        outputs = [module(x[:, :5], cache=cache[0], padding_mask=padding[:, :5])]
        for t in range(5, 9):
            outputs.append(module(x[:, t : t + 1], cache=cache[0], padding_mask=padding[:, : t + 1]))
    torch.testing.assert_close(torch.cat(outputs, 1)[padding], full[padding], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_rope_positions_override(backend: str) -> None:
    module = _variant("rope", backend=backend)
    x = _x(b=1, t=6)
    alone = module(x)
    torch.testing.assert_close(module(x, positions=torch.arange(6)), alone)
    # left padding with positions that count real tokens only: real outputs are unchanged
    padded = torch.cat((torch.randn(1, 3, D), x), 1)  # (1, 9, D): 3 pad tokens in front
    padding = torch.tensor([[False] * 3 + [True] * 6])
    positions = (padding.long().cumsum(-1) - 1).clamp(min=0)  # (1, 9)
    out = module(padded, padding_mask=padding, positions=positions)
    torch.testing.assert_close(out[:, 3:], alone, atol=1e-5, rtol=1e-5)
    # a gap in the positions changes relative distances, hence the output after the gap
    gapped = module(x, positions=torch.tensor([[0, 1, 2, 10, 11, 12]]))
    torch.testing.assert_close(gapped[:, :3], alone[:, :3])
    assert not torch.allclose(gapped[:, 3:], alone[:, 3:], atol=1e-4)
