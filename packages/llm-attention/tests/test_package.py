"""llm-attention installs alone and registers its built-in plugin."""

from __future__ import annotations

from llm_core import PluginManager


def test_builtin_plugin_is_registered() -> None:
    info = {i.name: i for i in PluginManager(env="").plugins()}
    assert info["llm_attention"].builtin
    assert info["llm_attention"].distribution == "llm-attention"
    assert info["llm_attention"].errors == []


def test_builtins_register_naive_and_sdpa() -> None:
    info = {i.name: i for i in PluginManager(env="").plugins()}
    assert sorted(info["llm_attention"].registered["attention"]) == ["naive", "sdpa"]


def test_conformance_check_accepts_builtins_and_rejects_a_broken_backend() -> None:
    import pytest

    from llm_attention import naive_attention, sdpa_attention
    from llm_attention.conformance import matches_naive_reference
    from llm_core.conformance import checks_for

    assert matches_naive_reference in [c.function for c in checks_for("attention")]
    matches_naive_reference("naive", naive_attention)
    matches_naive_reference("sdpa", sdpa_attention)

    def leaky(q, k, v, *, causal, mask, dropout_p, window, training):
        return naive_attention(q, k, v, causal=False, mask=mask, dropout_p=0.0, window=None, training=False)

    with pytest.raises(AssertionError, match=r"attention 'leaky' .*from the naive reference"):
        matches_naive_reference("leaky", leaky)
