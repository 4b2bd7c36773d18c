"""llm-model installs alone and registers its built-in plugin."""

from __future__ import annotations

from llm_core import PluginManager


def test_builtin_plugin_is_registered() -> None:
    info = {i.name: i for i in PluginManager(env="").plugins()}
    assert info["llm_model"].builtin
    assert info["llm_model"].distribution == "llm-model"
    assert info["llm_model"].errors == []
