"""A pre-allocated key/value cache for incremental decoding.

One :class:`KVCache` holds every layer's keys and values, each allocated
once as ``(batch, n_kv_heads, max_len, head_dim)``. Each layer gets a
:class:`LayerKVCache` that tracks *its own* length, so a model runs one
decoding step as::

    offset = cache.length              # positions of the new tokens start here
    for block, layer_cache in zip(blocks, cache):
        x = block(x, cache=layer_cache)   # each layer appends its k/v once

and nothing else needs advancing. The cache is meant for inference (run it
under ``torch.no_grad()`` or ``torch.inference_mode()``): it is written in
place, so it cannot be backpropagated through across steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from llm_attention.validation import check_positive
from llm_core.errors import ConfigError

__all__ = ["KVCache", "LayerKVCache"]


class LayerKVCache:
    """Keys and values of one attention layer: pre-allocated storage plus a fill length.

    ``keys``/``values`` are ``(batch, n_kv_heads, max_len, head_dim)``; the
    first :attr:`length` positions along dimension 2 are filled.
    """

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        if keys.shape != values.shape or keys.dim() != 4:
            raise ConfigError(
                "LayerKVCache needs keys and values of one shape (batch, n_kv_heads, max_len, head_dim), "
                f"got {tuple(keys.shape)} and {tuple(values.shape)}"
            )
        self.keys = keys
        self.values = values
        self.length = 0

    @property
    def max_len(self) -> int:
        """How many positions fit."""
        return self.keys.shape[2]

    @property
    def position(self) -> int:
        """The position the next token will take (same as :attr:`length`)."""
        return self.length

    def update(self, k_new: Tensor, v_new: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``(batch, n_kv_heads, t, head_dim)`` keys/values; return all filled ones so far.

        The returned tensors are views ``(batch, n_kv_heads, length, head_dim)``
        of the storage, valid until the next update, crop or reset.
        """
        b, h, _, d = self.keys.shape
        fits = k_new.dim() == 4 and (k_new.shape[0], k_new.shape[1], k_new.shape[3]) == (b, h, d)
        if not fits or k_new.shape != v_new.shape:
            raise ConfigError(
                f"KV cache expects keys/values of shape ({b}, {h}, t, {d}), "
                f"got {tuple(k_new.shape)} and {tuple(v_new.shape)}"
            )
        start, t = self.length, k_new.shape[2]
        if start + t > self.max_len:
            raise ConfigError(
                f"KV cache is full: {start} cached + {t} new tokens exceed max_len={self.max_len}; "
                "create the cache with a larger max_len, crop() it, or reset() it"
            )
        self.keys[:, :, start : start + t] = k_new
        self.values[:, :, start : start + t] = v_new
        self.length = start + t
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def crop(self, n: int) -> None:
        """Keep only the first ``n`` cached positions (for example to roll back rejected draft tokens)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= self.length:
            raise ConfigError(f"crop(n) needs 0 <= n <= length={self.length}, got {n!r}")
        self.length = n

    def reset(self) -> None:
        """Forget everything cached (the storage is kept and overwritten later)."""
        self.length = 0

    def __repr__(self) -> str:
        return f"LayerKVCache(length={self.length}, max_len={self.max_len}, shape={tuple(self.keys.shape)})"


class KVCache:
    """Pre-allocated key/value storage for ``n_layers`` attention layers.

    Index it (``cache[i]`` or ``cache.layer(i)``) or iterate over it to get each
    layer's :class:`LayerKVCache`. :attr:`length` is layer 0's length: read it
    before a step to know where the new tokens' positions start.
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value in (
            ("n_layers", n_layers),
            ("batch_size", batch_size),
            ("n_kv_heads", n_kv_heads),
            ("max_len", max_len),
            ("head_dim", head_dim),
        ):
            check_positive(name, value)
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.layers = [
            LayerKVCache(
                torch.zeros(shape, dtype=dtype, device=device),  # (b, n_kv_heads, max_len, head_dim)
                torch.zeros(shape, dtype=dtype, device=device),
            )
            for _ in range(n_layers)
        ]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def max_len(self) -> int:
        return self.layers[0].max_len

    @property
    def batch_size(self) -> int:
        return self.layers[0].keys.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].keys.dtype

    @property
    def device(self) -> torch.device:
        return self.layers[0].keys.device

    @property
    def nbytes(self) -> int:
        """Memory held by the cache, in bytes."""
        return sum(layer.keys.nbytes + layer.values.nbytes for layer in self.layers)

    @property
    def length(self) -> int:
        """Cached positions (layer 0's count; all layers agree between steps)."""
        return self.layers[0].length

    @property
    def position(self) -> int:
        """The position of the next token (same as :attr:`length`)."""
        return self.length

    def layer(self, i: int) -> LayerKVCache:
        """The cache of layer ``i``."""
        if not -self.n_layers <= i < self.n_layers:
            raise ConfigError(f"layer index {i} out of range for a cache of {self.n_layers} layers")
        return self.layers[i]

    def __getitem__(self, i: int) -> LayerKVCache:
        return self.layer(i)

    def __len__(self) -> int:
        return self.n_layers

    def __iter__(self) -> Iterator[LayerKVCache]:
        return iter(self.layers)

    def crop(self, n: int) -> None:
        """Keep only the first ``n`` positions in every layer."""
        for layer in self.layers:
            layer.crop(n)

    def reset(self) -> None:
        """Empty every layer."""
        for layer in self.layers:
            layer.reset()

    def __repr__(self) -> str:
        return (
            f"KVCache(n_layers={self.n_layers}, length={self.length}, max_len={self.max_len}, "
            f"dtype={self.dtype}, device={self.device})"
        )
