"""Rotary position embeddings (RoPE, Su et al. 2021) in the Hugging Face layout.

A head vector of ``rotary_dim`` features is split into two halves
``x = [x1, x2]``; feature ``i`` of ``x1`` and feature ``i`` of ``x2`` form a
2-D pair rotated by the angle ``position * inv_freq[i]``::

    rotate_half([x1, x2]) = [-x2, x1]
    rope(x) = x * cos + rotate_half(x) * sin      # cos/sin = [angles, angles]

This is the non-interleaved convention of ``transformers`` (Llama, Mistral,
Phi, …), so their weights load without permuting the query/key projections.
With ``rotary_dim < head_dim`` (Phi-style partial rotary) only the first
``rotary_dim`` features rotate; the rest pass through.

Frequency scaling (``scaling=``) for longer contexts:

* ``{"type": "linear", "factor": f}``: positions are divided by ``f``
  (position interpolation).
* ``{"type": "ntk", "factor": f}``: static NTK-aware scaling, the base
  becomes ``theta * f ** (d / (d - 2))``.
* ``{"type": "dynamic", "factor": f, "original_max_position_embeddings": n}``:
  the NTK base grows with the sequence once it is longer than ``n``
  (default ``max_seq_len``), as in ``transformers``' dynamic scaling.
* ``{"type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
  "original_max_position_embeddings"}``: Llama 3.1's wavelength-dependent
  scaling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from llm_core.errors import ConfigError

__all__ = ["SCALING_TYPES", "RotaryEmbedding", "apply_rotary", "rotate_half"]

#: Valid ``scaling["type"]`` values and the keys each one needs.
SCALING_TYPES: dict[str, tuple[str, ...]] = {
    "linear": ("factor",),
    "ntk": ("factor",),
    "dynamic": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}
_OPTIONAL_KEYS = {"dynamic": ("original_max_position_embeddings",)}


def rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first ``cos.shape[-1]`` features of ``x``; the rest pass through.

    ``x`` is ``(b, n_heads, t, head_dim)``; ``cos``/``sin`` broadcast to
    ``(…, t, rotary_dim)``.
    """
    rotary_dim = cos.shape[-1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if rotary_dim == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)


def _number(scaling: Mapping[str, Any], key: str) -> float:
    value = scaling[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"rope scaling '{key}' must be a positive number, got {value!r}")
    return float(value)


class RotaryEmbedding(nn.Module):
    """Rotary position embeddings for heads of ``head_dim`` features.

    Args:
        head_dim: features per attention head.
        max_seq_len: the longest sequence (highest position + 1) it will see.
        theta: the base of the frequencies (10 000 in the paper, 500 000 in Llama 3).
        rotary_dim: how many leading features rotate (even, default ``head_dim``).
        scaling: None or a dict, see the module docstring and :data:`SCALING_TYPES`.

    ``inv_freq`` is kept in float32 even when the module is cast to a lower
    precision; cos/sin are computed in float32 and cast to the input's dtype.
    """

    inv_freq: Tensor

    def __init__(
        self,
        head_dim: int,
        *,
        max_seq_len: int,
        theta: float = 10000.0,
        rotary_dim: int | None = None,
        scaling: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        rotary_dim = head_dim if rotary_dim is None else rotary_dim
        for name, value in (("head_dim", head_dim), ("max_seq_len", max_seq_len), ("rotary_dim", rotary_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RotaryEmbedding {name} must be a positive integer, got {value!r}")
        if rotary_dim % 2 or rotary_dim > head_dim:
            raise ConfigError(
                f"rotary_dim={rotary_dim} must be even and at most head_dim={head_dim}; "
                f"choose from {', '.join(map(str, range(2, head_dim + 1, 2)))}"
            )
        if not theta > 0:
            raise ConfigError(f"RotaryEmbedding theta must be positive, got {theta!r}")
        self.head_dim = head_dim
        self.max_seq_len = max_seq_len
        self.theta = float(theta)
        self.rotary_dim = rotary_dim
        self.scaling = self._check_scaling(scaling)
        self.register_buffer("inv_freq", self._inv_freq(), persistent=False)

    def _check_scaling(self, scaling: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if scaling is None:
            return None
        if not isinstance(scaling, Mapping) or scaling.get("type") not in SCALING_TYPES:
            found = scaling.get("type") if isinstance(scaling, Mapping) else scaling
            raise ConfigError(
                f"rope scaling type {found!r} is not supported; choose from {', '.join(SCALING_TYPES)} "
                "(as a dict such as {'type': 'linear', 'factor': 2.0}) or None"
            )
        kind = scaling["type"]
        required = SCALING_TYPES[kind]
        allowed = {"type", *required, *_OPTIONAL_KEYS.get(kind, ())}
        missing = [key for key in required if key not in scaling]
        unknown = sorted(set(scaling) - allowed)
        if missing or unknown:
            raise ConfigError(
                f"rope scaling '{kind}' needs keys {', '.join(required)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else "")
            )
        checked = {
            "type": kind,
            **{key: _number(scaling, key) for key in allowed - {"type"} if key in scaling},
        }
        if kind == "llama3" and checked["high_freq_factor"] <= checked["low_freq_factor"]:
            raise ConfigError("rope scaling 'llama3' needs high_freq_factor > low_freq_factor")
        return checked

    def _inv_freq(self, seq_len: int | None = None, device: torch.device | None = None) -> Tensor:
        """Inverse frequencies ``(rotary_dim // 2,)`` in float32, with static scaling applied."""
        d = self.rotary_dim
        base = self.theta
        scaling = self.scaling or {"type": None}
        if scaling["type"] == "ntk":
            base = base * scaling["factor"] ** (d / (d - 2)) if d > 2 else base
        elif scaling["type"] == "dynamic" and seq_len is not None:
            original = scaling.get("original_max_position_embeddings", self.max_seq_len)
            if seq_len > original and d > 2:
                base = base * ((scaling["factor"] * seq_len / original) - (scaling["factor"] - 1)) ** (
                    d / (d - 2)
                )
        exponents = torch.arange(0, d, 2, dtype=torch.int64, device=device).float() / d
        inv_freq = 1.0 / (base**exponents)  # (d/2,)
        if scaling["type"] == "linear":
            inv_freq = inv_freq / scaling["factor"]
        elif scaling["type"] == "llama3":
            inv_freq = self._llama3(inv_freq, scaling)
        return inv_freq

    @staticmethod
    def _llama3(inv_freq: Tensor, scaling: Mapping[str, float]) -> Tensor:
        """Llama 3.1: slow down low frequencies by ``factor``, keep high ones, blend in between."""
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
        smooth = (original / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= original / high) & (wavelen <= original / low)
        return torch.where(medium, blended, scaled)

    def reset_buffers(self, device: torch.device | str = "cpu") -> None:
        """Recompute ``inv_freq`` on ``device`` (after the module was built on the ``meta`` device)."""
        self.inv_freq = self._inv_freq(device=torch.device(device))

    def _apply(self, fn: Any, recurse: bool = True) -> RotaryEmbedding:
        # .to(dtype)/.half() must not round the frequencies: rebuild them in float32 on the new device.
        super()._apply(fn, recurse)
        self.inv_freq = self._inv_freq(device=self.inv_freq.device)
        return self

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """``cos``/``sin`` of shape ``positions.shape + (rotary_dim,)`` in float32."""
        inv_freq = self.inv_freq
        if self.scaling is not None and self.scaling["type"] == "dynamic":
            seq_len = int(positions.max()) + 1 if positions.numel() else 0
            inv_freq = self._inv_freq(seq_len, device=positions.device)
        angles = positions.to(torch.float32)[..., None] * inv_freq.to(positions.device)  # (…, t, d/2)
        angles = torch.cat((angles, angles), dim=-1)  # (…, t, rotary_dim)
        return angles.cos(), angles.sin()

    def _check_length(self, offset: int, t: int) -> None:
        if offset + t > self.max_seq_len:
            raise ConfigError(
                f"RotaryEmbedding got positions up to {offset + t - 1} but max_seq_len={self.max_seq_len}; "
                f"keep sequences (with the cache) at most {self.max_seq_len} tokens or raise max_seq_len"
            )

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate ``x`` ``(b, n_heads, t, head_dim)`` as positions ``offset … offset + t - 1``."""
        t = x.shape[-2]
        self._check_length(offset, t)
        positions = torch.arange(offset, offset + t, device=x.device)
        cos, sin = self.cos_sin(positions)  # (t, rotary_dim)
        return apply_rotary(x, cos, sin)

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Rotate queries and keys ``(b, n_heads, t, head_dim)`` at ``positions`` ``(t,)`` or ``(b, t)``.

        (Not named ``apply``: that is ``nn.Module.apply(fn)``, used to initialise weights.)
        """
        cos, sin = self.cos_sin(positions)  # (t, rd) or (b, t, rd)
        if cos.dim() == 3:
            cos, sin = cos[:, None], sin[:, None]  # (b, 1, t, rd)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, rotary_dim={self.rotary_dim}, max_seq_len={self.max_seq_len}, "
            f"theta={self.theta:g}, scaling={self.scaling}"
        )
