"""The attention backends: naive (reference) vs sdpa, masks, GQA, windows, padding, dropout."""

from __future__ import annotations

import pytest
import torch

from llm_attention import (
    RotaryEmbedding,
    attention,
    attention_mask,
    causal_mask,
    naive_attention,
    repeat_kv,
    sdpa_attention,
)
from llm_core import get_registry
from llm_core.errors import ConfigError, PluginError

HD = 8


def _qkv(b: int, h: int, h_kv: int, t_q: int, t_k: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, t_q, HD, generator=g)
    k = torch.randn(b, h_kv, t_k, HD, generator=g)
    v = torch.randn(b, h_kv, t_k, HD, generator=g)
    return q, k, v


def _padding(b: int, t_k: int) -> torch.Tensor:
    """Left padding in row 0 (first 3 keys), right padding in row 1 (last 2), none elsewhere."""
    mask = torch.ones(b, t_k, dtype=torch.bool)
    mask[0, :3] = False
    if b > 1:
        mask[1, -2:] = False
    return mask


def _explicit_reference(q, k, v, allowed) -> torch.Tensor:
    """A loop over query positions: softmax over the allowed keys only (zeros when none)."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(n_rep, 1), v.repeat_interleave(n_rep, 1)
    out = torch.zeros_like(q)
    for i in range(q.shape[2]):
        for bi in range(q.shape[0]):
            keys = allowed[bi if allowed.shape[0] > 1 else 0, i].nonzero().flatten()
            if keys.numel():
                scores = torch.einsum("hd,hnd->hn", q[bi, :, i], k[bi, :, keys]) / HD**0.5  # (h, n)
                out[bi, :, i] = torch.einsum("hn,hnd->hd", torch.softmax(scores, -1), v[bi, :, keys])
    return out


def test_builtins_are_registered() -> None:
    registry = get_registry("attention")
    assert registry["naive"].obj is naive_attention
    assert registry["sdpa"].obj is sdpa_attention
    assert registry["sdpa"].plugin == "llm_attention"


def test_unknown_backend_lists_the_registered_ones() -> None:
    q, k, v = _qkv(1, 2, 2, 3, 3)
    with pytest.raises(PluginError, match=r"unknown attention 'flash9'; available: .*naive.*sdpa"):
        attention(q, k, v, backend="flash9")


CASES = {
    "plain": dict(h=4, h_kv=4, t_q=7, t_k=7),
    "gqa": dict(h=4, h_kv=2, t_q=7, t_k=7),
    "mqa": dict(h=4, h_kv=1, t_q=7, t_k=7),
    "window": dict(h=4, h_kv=2, t_q=9, t_k=9, window=3),
    "padding": dict(h=2, h_kv=2, t_q=6, t_k=6, padding=True),
    "decode-one": dict(h=4, h_kv=2, t_q=1, t_k=9),
    "decode-chunk": dict(h=4, h_kv=2, t_q=3, t_k=9),
    "chunk-window-padding": dict(h=4, h_kv=1, t_q=4, t_k=10, window=4, padding=True),
    "non-causal-padding": dict(h=2, h_kv=1, t_q=5, t_k=5, causal=False, padding=True),
    "scale": dict(h=2, h_kv=2, t_q=5, t_k=5, scale=0.1),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_naive_and_sdpa_agree(case: dict) -> None:
    b = 3
    q, k, v = _qkv(b, case["h"], case["h_kv"], case["t_q"], case["t_k"])
    options = dict(
        causal=case.get("causal", True),
        window=case.get("window"),
        padding_mask=_padding(b, case["t_k"]) if case.get("padding") else None,
        scale=case.get("scale"),
    )
    naive = attention(q, k, v, backend="naive", **options)
    sdpa = attention(q, k, v, backend="sdpa", **options)
    assert naive.shape == q.shape
    assert torch.isfinite(naive).all() and torch.isfinite(sdpa).all()
    assert (naive - sdpa).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
@pytest.mark.parametrize("case", ["window", "decode-one", "decode-chunk", "chunk-window-padding", "gqa"])
def test_backends_match_an_explicit_loop(backend: str, case: str) -> None:
    spec = CASES[case]
    b = 2
    q, k, v = _qkv(b, spec["h"], spec["h_kv"], spec["t_q"], spec["t_k"], seed=1)
    padding = _padding(b, spec["t_k"]) if spec.get("padding") else None
    allowed = causal_mask(spec["t_q"], spec["t_k"], window=spec.get("window"))[None].expand(b, -1, -1)
    if padding is not None:
        allowed = allowed & padding[:, None, :]
    out = attention(q, k, v, backend=backend, window=spec.get("window"), padding_mask=padding)
    torch.testing.assert_close(out, _explicit_reference(q, k, v, allowed), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_rope_inputs_agree(backend: str) -> None:
    q, k, v = _qkv(2, 4, 2, 6, 6)
    rope = RotaryEmbedding(HD, max_seq_len=16)
    q, k = rope(q), rope(k)
    ref = attention(q, k, v, backend="naive")
    assert (attention(q, k, v, backend=backend) - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_gqa_equals_mha_with_repeated_heads(backend: str) -> None:
    q, k, v = _qkv(2, 6, 2, 5, 5)
    grouped = attention(q, k, v, backend=backend)
    full = attention(q, repeat_kv(k, 3), repeat_kv(v, 3), backend=backend)
    torch.testing.assert_close(grouped, full)
    # query heads 0-2 share kv head 0: swapping kv heads changes heads 3-5 only
    swapped = attention(q, k.flip(1), v.flip(1), backend=backend)
    assert not torch.allclose(swapped[:, :3], grouped[:, :3])


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_first_query_with_window_one_copies_its_value(backend: str) -> None:
    q, k, v = _qkv(1, 2, 2, 5, 5)
    torch.testing.assert_close(attention(q, k, v, backend=backend, window=1), v)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_padded_keys_do_not_leak(backend: str) -> None:
    b, t = 2, 6
    q, k, v = _qkv(b, 2, 2, t, t)
    padding = _padding(b, t)
    out = attention(q, k, v, backend=backend, padding_mask=padding, causal=False)
    k2, v2 = k.clone(), v.clone()
    k2[~padding[:, None, :].expand_as(k[..., 0])] = 50.0
    v2[~padding[:, None, :].expand_as(v[..., 0])] = -50.0
    out2 = attention(q, k2, v2, backend=backend, padding_mask=padding, causal=False)
    torch.testing.assert_close(out2, out)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_fully_masked_rows_are_zero_not_nan(backend: str) -> None:
    q, k, v = _qkv(1, 2, 2, 4, 4)
    padding = torch.tensor([[False, False, True, True]])  # left padding: queries 0, 1 see no key
    out = attention(q, k, v, backend=backend, padding_mask=padding)
    assert torch.isfinite(out).all()
    assert (out[:, :, :2] == 0).all() and (out[:, :, 2:] != 0).any()


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_dropout_only_in_training_and_reproducible(backend: str) -> None:
    q, k, v = _qkv(2, 2, 2, 6, 6)
    plain = attention(q, k, v, backend=backend)
    evaluated = attention(q, k, v, backend=backend, dropout_p=0.5, training=False)
    torch.testing.assert_close(evaluated, plain)
    torch.manual_seed(7)
    first = attention(q, k, v, backend=backend, dropout_p=0.5, training=True)
    torch.manual_seed(7)
    second = attention(q, k, v, backend=backend, dropout_p=0.5, training=True)
    assert not torch.allclose(first, plain)
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_gradients_flow(backend: str) -> None:
    q, k, v = (x.requires_grad_() for x in _qkv(1, 4, 2, 5, 5))
    attention(q, k, v, backend=backend, window=2).sum().backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in (q, k, v))


def test_causal_mask_alignment_and_window() -> None:
    expected = torch.tensor(
        [
            [True, True, True, False],
            [True, True, True, True],
        ]
    )
    assert torch.equal(causal_mask(2, 4), expected)
    windowed = causal_mask(4, window=2)
    assert torch.equal(windowed.sum(-1), torch.tensor([1, 2, 2, 2]))
    assert windowed[3, 2] and windowed[3, 3] and not windowed[3, 1]


def test_attention_mask_none_when_nothing_hidden() -> None:
    assert attention_mask(1, 5) is None
    assert attention_mask(5, 5, causal=False) is None
    assert attention_mask(5, 5).shape == (1, 1, 5, 5)
    assert attention_mask(5, 5, padding_mask=torch.ones(3, 5, dtype=torch.bool)).shape == (3, 1, 5, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(window=0), "window must be a positive integer"),
        (dict(window=2, causal=False), "window requires causal=True"),
        (dict(padding_mask=torch.ones(2, 3)), r"padding_mask must be a bool tensor \(batch, 5\)"),
        (dict(dropout_p=1.0), r"dropout_p must be a probability in \[0, 1\)"),
    ],
)
def test_bad_options_raise_config_error(kwargs: dict, message: str) -> None:
    q, k, v = _qkv(2, 2, 2, 5, 5)
    for backend in ("naive", "sdpa"):
        with pytest.raises(ConfigError, match=message):
            attention(q, k, v, backend=backend, **kwargs)


def test_kv_heads_must_divide_query_heads() -> None:
    q, k, v = _qkv(1, 6, 4, 3, 3)
    with pytest.raises(
        ConfigError, match=r"n_kv_heads=4 does not divide n_heads=6; choose n_kv_heads from 1, 2, 3, 6"
    ):
        attention(q, k, v)
