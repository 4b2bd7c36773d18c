"""Plugins loaded through real ``scratchlm`` entry points (fixture packages installed by nox)."""

from __future__ import annotations

import importlib.metadata as metadata

import pytest

from llm_core import PluginError, PluginManager


def test_fixture_plugins_are_installed() -> None:
    names = {ep.name for ep in metadata.entry_points(group="scratchlm")}
    assert {"example", "broken_import"} <= names, "install tests/fixtures/* (nox -s 'tests(llm-core)' does)"


def test_builtin_core_plugin_always_loads() -> None:
    for env in ("", "example", None):
        manager = PluginManager(env=env) if env is not None else PluginManager(env="example,broken_import")
        info = {i.name: i for i in manager.plugins()}
        assert info["llm_core"].builtin
        assert "register_commands" in info["llm_core"].hooks


def test_empty_selection_loads_builtins_only() -> None:
    manager = PluginManager(env="")
    assert all(info.builtin for info in manager.plugins())
    assert manager.problems == []


def test_selection_loads_only_named_plugin() -> None:
    manager = PluginManager(env="example")
    names = {i.name for i in manager.plugins()}
    assert "example" in names and "broken_hook" not in names
    entry = manager.registry("tokenizers")["example-chars"]
    assert entry.plugin == "example" and entry.version == "0.1.0"
    assert entry.obj().decode(entry.obj().encode("héllo")) == "héllo"


def test_selection_by_distribution_name() -> None:
    manager = PluginManager(env="scratchlm-broken-plugin")
    names = {i.name for i in manager.plugins()}
    assert {"broken_import", "broken_hook", "duplicate"} <= names
    assert "example" not in names


def test_unknown_selected_name_is_reported() -> None:
    manager = PluginManager(env="example,nonexistent")
    assert [p.plugin for p in manager.problems] == ["nonexistent"]


def test_import_error_reported_and_rest_works() -> None:
    manager = PluginManager(env="example,broken_import")
    [problem] = [p for p in manager.problems if p.plugin == "broken_import"]
    assert problem.stage == "import"
    assert "some_missing_dependency" in problem.message
    assert "example-chars" in manager.registry("tokenizers")
    info = {i.name: i for i in manager.plugins()}
    assert info["broken_import"].loaded is False


def test_hook_error_keeps_other_plugins() -> None:
    manager = PluginManager(env="example,broken_hook")
    manager.registry("optimizers")
    stages = {p.stage for p in manager.problems if p.plugin == "broken_hook"}
    assert "hook:register_optimizers" in stages
    assert "example-chars" in manager.registry("tokenizers")


def test_duplicate_across_distributions_names_both() -> None:
    manager = PluginManager(env="example,duplicate")
    with pytest.raises(
        PluginError, match=r"registered by both '(duplicate|example)' and '(example|duplicate)'"
    ):
        manager.registry("tokenizers")["example-chars"]
