"""Registries built from in-process plugin objects."""

from __future__ import annotations

from typing import Any

import pytest

from llm_core import KINDS, PluginError, PluginManager, get_registry, hookimpl, hookspecs


class Provider:
    def __init__(self, *names: str) -> None:
        self.names = names

    @hookimpl
    def register_optimizers(self, register: Any) -> None:
        for name in self.names:
            register(name, f"{name}-factory", description=f"the {name} optimizer")


class Raising:
    @hookimpl
    def register_optimizers(self, register: Any) -> None:
        raise RuntimeError("kaput")


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager(load_entry_points=False)


def test_registered_object_keeps_plugin_and_version(manager: PluginManager) -> None:
    manager.register(Provider("lion"), "lion-plugin", distribution="scratchlm-lion", version="1.2.3")
    entry = manager.registry("optimizers")["lion"]
    assert (entry.obj, entry.plugin, entry.version) == ("lion-factory", "lion-plugin", "1.2.3")
    assert entry.meta == {"description": "the lion optimizer"}
    assert list(manager.registry("optimizers")) == ["lion"]


def test_duplicate_name_names_both_providers(manager: PluginManager) -> None:
    manager.register(Provider("adamw", "sgd"), "first")
    manager.register(Provider("adamw"), "second")
    registry = manager.registry("optimizers")
    with pytest.raises(PluginError, match="'adamw' is registered by both 'first' and 'second'"):
        registry["adamw"]
    assert registry["sgd"].obj == "sgd-factory"  # the rest keeps working
    assert any(p.plugin == "second" and p.stage == "register" for p in manager.problems)


def test_unknown_name_lists_names_and_package(manager: PluginManager) -> None:
    manager.register(Provider("adamw", "sgd"), "p")
    with pytest.raises(PluginError) as info:
        manager.registry("optimizers")["lion"]
    message = str(info.value)
    assert "unknown optimizer 'lion'" in message
    assert "available: adamw, sgd" in message
    assert "llm-train" in message


def test_raising_hook_is_reported_and_others_work(manager: PluginManager) -> None:
    manager.register(Raising(), "bad")
    manager.register(Provider("sgd"), "good")
    assert manager.registry("optimizers").get_obj("sgd") == "sgd-factory"
    [problem] = manager.problems
    assert (problem.plugin, problem.stage) == ("bad", "hook:register_optimizers")
    assert "RuntimeError: kaput" in problem.message


def test_none_object_is_rejected(manager: PluginManager) -> None:
    class NoneProvider:
        @hookimpl
        def register_datasets(self, register: Any) -> None:
            register("empty", None)

    manager.register(NoneProvider(), "none")
    assert "empty" not in manager.registry("datasets")
    assert "registered as None" in manager.problems[0].message


def test_unknown_kind(manager: PluginManager) -> None:
    with pytest.raises(PluginError, match="unknown registry kind 'widgets'"):
        manager.registry("widgets")


def test_register_plugin_fixture_is_scoped(register_plugin: Any) -> None:
    register_plugin(Provider("fixture-only"), "fixture-plugin")
    assert "fixture-only" in get_registry("optimizers")


def test_register_plugin_fixture_cleaned_up() -> None:
    assert "fixture-only" not in get_registry("optimizers")


def test_every_kind_has_a_documented_hook() -> None:
    for kind in KINDS:
        spec = getattr(hookspecs, f"register_{kind}")
        assert spec.__doc__ and "``obj`` must be" in spec.__doc__
    assert hookspecs.register_commands.__doc__


def test_load_tokenizer_by_name_and_by_file(register_plugin: Any, tmp_path: Any, monkeypatch: Any) -> None:
    from llm_core import DataError, load_tokenizer, providers

    class Saved:
        def __init__(self, path: str | None = None) -> None:
            self.path = path

    class Provider:
        @hookimpl
        def register_tokenizers(self, register: Any) -> None:
            register("kit-saved", Saved, file_format="kit-v1")

    register_plugin(Provider(), "kit-tokenizers")
    assert load_tokenizer("kit-saved").path is None
    saved = tmp_path / "tok.json"
    saved.write_text('{"format": "kit-v1"}')
    assert load_tokenizer(str(saved)).path == str(saved)
    saved.write_text('{"format": "other"}')
    with pytest.raises(PluginError, match="no registered tokenizer reads format 'other'"):
        load_tokenizer(str(saved))
    saved.write_text('{"format": "kit-v2"}')  # a known format whose package is not installed
    with monkeypatch.context() as patch:
        patch.setitem(providers.TOKENIZER_FORMAT_PACKAGES, "kit-v2", "llm-kit")
        with pytest.raises(PluginError, match="tokenizer comes from llm-kit, which is not installed"):
            load_tokenizer(str(saved))
    with pytest.raises(DataError, match="tokenizer file not found"):
        load_tokenizer(str(tmp_path / "missing.json"))
    saved.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a saved tokenizer"):
        load_tokenizer(str(saved))
