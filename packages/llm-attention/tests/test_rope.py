"""Rotary position embeddings: complex-number reference, relative positions, scaling variants."""

from __future__ import annotations

import math

import pytest
import torch

from llm_attention import RotaryEmbedding, rotate_half
from llm_core.errors import ConfigError


def _complex_rope(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """RoPE as complex multiplication, in the Hugging Face (half-split) layout."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())  # pairs (i, i + d/2)
    angles = positions.double()[:, None] * inv_freq.double()[None, :]  # (t, d/2)
    z = z * torch.polar(torch.ones_like(angles), angles)
    return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)


def _interleaved_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Meta's original RoPE: adjacent features (2i, 2i+1) form the complex pairs."""
    d = x.shape[-1]
    freqs = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * freqs[None, :]
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    z = z * torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(z).flatten(-2).to(x.dtype)


@pytest.mark.parametrize("head_dim", [2, 8, 16])
def test_matches_complex_number_rope(head_dim: int) -> None:
    rope = RotaryEmbedding(head_dim, max_seq_len=32)
    x = torch.randn(2, 3, 7, head_dim)
    expected = _complex_rope(x, torch.arange(5, 12), rope.inv_freq)
    torch.testing.assert_close(rope(x, offset=5), expected, atol=1e-5, rtol=1e-5)


def test_half_split_layout_is_a_permutation_of_meta_interleaved_layout() -> None:
    d, t = 8, 6
    rope = RotaryEmbedding(d, max_seq_len=16)
    x_hf = torch.randn(1, 2, t, d)
    to_interleaved = torch.stack(
        (torch.arange(d // 2), torch.arange(d // 2) + d // 2), -1
    ).flatten()  # 0,4,1,5,…
    x_meta = x_hf[..., to_interleaved]
    expected = _interleaved_rope(x_meta, torch.arange(t))
    torch.testing.assert_close(rope(x_hf)[..., to_interleaved], expected, atol=1e-5, rtol=1e-5)


def test_position_zero_is_identity_and_norm_is_kept() -> None:
    rope = RotaryEmbedding(16, max_seq_len=64)
    x = torch.randn(1, 1, 40, 16)
    out = rope(x)
    torch.testing.assert_close(out[..., 0, :], x[..., 0, :])
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    assert not torch.allclose(out[..., 1:, :], x[..., 1:, :])


@pytest.mark.parametrize("shift", [1, 5, 17])
def test_scores_depend_only_on_relative_position(shift: int) -> None:
    rope = RotaryEmbedding(16, max_seq_len=64)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        qm = rope(q.view(1, 1, 1, 16), offset=m)
        kn = rope(k.view(1, 1, 1, 16), offset=n)
        return (qm * kn).sum()

    # cos/sin are computed in float32, so float32 tolerances
    torch.testing.assert_close(score(7, 3), score(7 + shift, 3 + shift), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(score(2, 9), score(2 + shift, 9 + shift), atol=1e-5, rtol=1e-5)
    assert abs(score(7, 3) - score(7, 4)) > 1e-3


def test_rotate_with_positions_matches_forward_with_offset() -> None:
    rope = RotaryEmbedding(8, max_seq_len=32)
    q, k = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 3, 8)
    positions = torch.tensor([[0, 1, 2], [10, 11, 12]])  # (b, t)
    q_rot, k_rot = rope.rotate(q, k, positions)
    torch.testing.assert_close(q_rot[0], rope(q[:1], 0)[0])
    torch.testing.assert_close(q_rot[1], rope(q[1:], 10)[0])
    torch.testing.assert_close(k_rot[1], rope(k[1:], 10)[0])


def test_partial_rotary_rotates_only_the_leading_features() -> None:
    rope = RotaryEmbedding(16, max_seq_len=32, rotary_dim=8)
    full = RotaryEmbedding(8, max_seq_len=32)
    x = torch.randn(1, 2, 5, 16)
    out = rope(x, offset=3)
    torch.testing.assert_close(out[..., 8:], x[..., 8:])
    torch.testing.assert_close(out[..., :8], full(x[..., :8], offset=3))


def test_rotate_half() -> None:
    assert torch.equal(rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([-3.0, -4.0, 1.0, 2.0]))


def test_linear_scaling_interpolates_positions() -> None:
    scaled = RotaryEmbedding(8, max_seq_len=64, scaling={"type": "linear", "factor": 4.0})
    plain = RotaryEmbedding(8, max_seq_len=64)
    x = torch.randn(1, 1, 1, 8)
    torch.testing.assert_close(scaled(x, offset=12), plain(x, offset=3))


def test_ntk_scaling_raises_the_base() -> None:
    d, factor = 16, 4.0
    ntk = RotaryEmbedding(d, max_seq_len=64, scaling={"type": "ntk", "factor": factor})
    expected = RotaryEmbedding(d, max_seq_len=64, theta=10000.0 * factor ** (d / (d - 2)))
    torch.testing.assert_close(ntk.inv_freq, expected.inv_freq)
    assert ntk.inv_freq[0] == 1.0 and ntk.inv_freq[-1] < RotaryEmbedding(d, max_seq_len=8).inv_freq[-1]


def test_dynamic_scaling_only_beyond_the_original_length() -> None:
    d, factor, original = 8, 2.0, 16
    dynamic = RotaryEmbedding(
        d,
        max_seq_len=64,
        scaling={"type": "dynamic", "factor": factor, "original_max_position_embeddings": original},
    )
    plain = RotaryEmbedding(d, max_seq_len=64)
    short = torch.arange(original)
    torch.testing.assert_close(dynamic.cos_sin(short)[0], plain.cos_sin(short)[0])
    long = torch.arange(32)
    base = 10000.0 * (factor * 32 / original - (factor - 1)) ** (d / (d - 2))
    torch.testing.assert_close(
        dynamic.cos_sin(long)[1], RotaryEmbedding(d, max_seq_len=64, theta=base).cos_sin(long)[1]
    )


def _meta_llama3_scaling(freqs: torch.Tensor, factor=8.0, low=1.0, high=4.0, old=8192) -> torch.Tensor:
    """The loop from Meta's llama3 reference code (apply_scaling)."""
    out = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(freq)
        elif wavelen > old / low:
            out.append(freq / factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * freq / factor + smooth * freq)
    return torch.tensor(out)


def test_llama3_scaling_matches_the_reference_loop() -> None:
    scaling = {
        "type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    rope = RotaryEmbedding(64, max_seq_len=128, theta=500000.0, scaling=scaling)
    plain = RotaryEmbedding(64, max_seq_len=128, theta=500000.0)
    expected = _meta_llama3_scaling(plain.inv_freq)
    torch.testing.assert_close(rope.inv_freq, expected)
    ratio = plain.inv_freq / rope.inv_freq
    # all three bands are exercised: unchanged, divided by factor, blended in between
    assert (ratio == 1).any() and torch.isclose(ratio, torch.tensor(8.0)).any()
    assert ((ratio > 1.01) & (ratio < 7.99)).any()


def test_casting_keeps_float32_frequencies() -> None:
    rope = RotaryEmbedding(8, max_seq_len=64)
    reference = rope.inv_freq.clone()
    rope.to(torch.bfloat16)
    assert rope.inv_freq.dtype == torch.float32
    torch.testing.assert_close(rope.inv_freq, reference, atol=0, rtol=0)
    assert rope(torch.randn(1, 1, 4, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(head_dim=8, rotary_dim=3),
            "rotary_dim=3 must be even and at most head_dim=8; choose from 2, 4, 6, 8",
        ),
        (dict(head_dim=7), "rotary_dim=7 must be even"),
        (
            dict(head_dim=8, scaling={"type": "yarn"}),
            "'yarn' is not supported; choose from linear, ntk, dynamic, llama3",
        ),
        (dict(head_dim=8, scaling={"type": "llama3", "factor": 8.0}), "missing low_freq_factor"),
        (dict(head_dim=8, scaling={"type": "linear", "factor": -1}), "'factor' must be a positive number"),
        (dict(head_dim=8, scaling={"type": "linear", "factor": 2, "beta": 1}), "unknown beta"),
    ],
)
def test_bad_config_raises_config_error(kwargs: dict, message: str) -> None:
    head_dim = kwargs.pop("head_dim")
    with pytest.raises(ConfigError, match=message):
        RotaryEmbedding(head_dim, max_seq_len=16, **kwargs)


def test_positions_beyond_max_seq_len_raise() -> None:
    rope = RotaryEmbedding(8, max_seq_len=16)
    with pytest.raises(ConfigError, match="max_seq_len=16"):
        rope(torch.randn(1, 1, 4, 8), offset=14)
