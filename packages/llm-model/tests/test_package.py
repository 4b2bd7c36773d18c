"""llm-model installs alone and registers its built-in plugin."""

from __future__ import annotations

from llm_core import PluginManager


def test_builtin_plugin_is_registered() -> None:
    info = {i.name: i for i in PluginManager(env="").plugins()}
    assert info["llm_model"].builtin
    assert info["llm_model"].distribution == "llm-model"
    assert info["llm_model"].errors == []


def test_transformers_is_never_imported_by_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llm_model, llm_model.hf, llm_model.commands, llm_model.conformance;"
        "llm_model.GPTModel; llm_model.import_hf;"
        "assert 'transformers' not in sys.modules, 'transformers imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_is_exported() -> None:
    import llm_model

    for name in llm_model.__all__:
        assert getattr(llm_model, name) is not None
    assert "GPTModel" in dir(llm_model)
