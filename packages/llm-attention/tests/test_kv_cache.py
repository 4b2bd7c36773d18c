"""The pre-allocated KV cache: appending, views, bookkeeping, limits."""

from __future__ import annotations

import pytest
import torch

from llm_attention import KVCache, LayerKVCache
from llm_core.errors import ConfigError


def _cache(**kwargs) -> KVCache:
    options = dict(n_layers=2, batch_size=2, n_kv_heads=3, max_len=8, head_dim=4) | kwargs
    return KVCache(**options)


def test_update_appends_and_returns_everything_so_far() -> None:
    cache = _cache()
    layer = cache[0]
    k1, v1 = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    k_all, v_all = layer.update(k1, v1)
    assert torch.equal(k_all, k1) and torch.equal(v_all, v1)
    k2, v2 = torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4)
    k_all, v_all = layer.update(k2, v2)
    assert k_all.shape == (2, 3, 6, 4)
    assert torch.equal(k_all, torch.cat((k1, k2), 2)) and torch.equal(v_all, torch.cat((v1, v2), 2))
    assert layer.length == layer.position == 6


def test_layers_track_their_own_length() -> None:
    cache = _cache()
    assert cache.length == 0 and len(cache) == 2
    step = torch.randn(2, 3, 2, 4)
    for layer in cache:  # one model step: every layer appends once, nothing else advances
        layer.update(step, step)
    assert cache.length == cache.position == 2
    assert [layer.length for layer in cache] == [2, 2]
    assert cache.layer(1) is cache[1] is cache.layers[1]
    assert isinstance(cache[-1], LayerKVCache)
    # layers do not share storage
    assert cache[0].keys.data_ptr() != cache[1].keys.data_ptr()


def test_crop_and_reset() -> None:
    cache = _cache()
    k = torch.randn(2, 3, 4, 4)
    for layer in cache:
        layer.update(k, k)
    cache.crop(1)
    assert cache.length == 1
    k_new = torch.randn(2, 3, 1, 4)
    k_all, _ = cache[0].update(k_new, k_new)
    assert torch.equal(k_all, torch.cat((k[:, :, :1], k_new), 2))
    cache.reset()
    assert [layer.length for layer in cache] == [0, 0]
    with pytest.raises(ConfigError, match="crop"):
        cache.crop(3)


def test_exceeding_max_len_says_the_max() -> None:
    cache = _cache(max_len=4)
    k = torch.randn(2, 3, 3, 4)
    cache[0].update(k, k)
    with pytest.raises(ConfigError, match=r"3 cached \+ 2 new tokens exceed max_len=4"):
        cache[0].update(k[:, :, :2], k[:, :, :2])
    assert cache[0].length == 3  # a failed update changes nothing


def test_wrong_shape_is_rejected() -> None:
    cache = _cache()
    with pytest.raises(ConfigError, match=r"expects keys/values of shape \(2, 3, t, 4\)"):
        cache[0].update(torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4))


def test_dtype_and_bad_sizes() -> None:
    cache = _cache(dtype=torch.float64)
    assert (
        cache[0].keys.dtype == cache.dtype == torch.float64 and cache.max_len == 8 and cache.batch_size == 2
    )
    assert cache.nbytes == 2 * 2 * (2 * 3 * 8 * 4) * 8
    with pytest.raises(ConfigError, match="max_len must be a positive integer, got 0"):
        _cache(max_len=0)
    with pytest.raises(ConfigError, match="layer index 5 out of range"):
        cache.layer(5)
