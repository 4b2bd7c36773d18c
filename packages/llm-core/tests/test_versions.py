"""Family versions: `scratchlm --version`, `scratchlm plugins`, plugins whose llm-* requirements are unmet."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_core import PluginManager, __version__, reset_manager
from llm_core.cli import main
from llm_core.versions import FAMILY, installed_versions, unmet_requirements

INSTALLED = {"llm-core": "0.2.0", "llm-data": "0.2.0", "llm-train": None}


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("llm-core>=0.2,<0.3", None),
        ("llm-core", None),
        ("llm_core>=0.2", None),
        ("llm-core>=0.3,<0.4", "llm-core<0.4,>=0.3, but llm-core 0.2.0 is installed"),
        ("llm-core<0.2", "llm-core<0.2, but llm-core 0.2.0 is installed"),
        ("llm-train>=0.2", "llm-train>=0.2, but llm-train is not installed"),
        ("llm-train>=0.2; extra == 'test'", None),  # only with an extra: pip's business
        ("llm-core>=9; python_version < '3'", None),  # not for this interpreter
        ("torch>=99", None),  # not a family package
        ("not a requirement !!", None),
    ],
)
def test_unmet_requirements(requirement: str, expected: str | None) -> None:
    assert unmet_requirements([requirement], INSTALLED) == ([expected] if expected else [])


def test_installed_versions_lists_the_family() -> None:
    versions = installed_versions()
    assert list(versions) == list(FAMILY)
    assert versions["llm-core"] == __version__


def _fake_plugin(root: Path, dist: str, requires: list[str], module: str) -> None:
    """An installed-looking distribution (``.dist-info`` on ``sys.path``) with one scratchlm entry point."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {dist}", "Version: 1.0"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[scratchlm]\n{dist} = {module}\n", encoding="utf-8")


def test_plugin_needing_another_core_is_reported_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the module does not exist: importing it would fail with an ImportError, which must not happen
    _fake_plugin(tmp_path, "future-plugin", ["llm-core>=99.0,<100.0"], "future_plugin_module_absent")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(env="future-plugin")
    [problem] = [p for p in manager.problems if p.plugin == "future-plugin"]
    assert problem.stage == "version"
    assert "future-plugin 1.0 requires llm-core<100.0,>=99.0" in problem.message
    assert f"but llm-core {__version__} is installed" in problem.message
    info = {i.name: i for i in manager.plugins()}["future-plugin"]
    assert info.loaded is False and info.errors == [f"version: {problem.message}"]
    assert any(i.name == "llm_core" and i.loaded for i in manager.plugins())  # the rest still works


def test_plugin_with_met_requirements_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "current_plugin_module.py").write_text(
        "from llm_core import hookimpl\n\n"
        "@hookimpl\n"
        "def register_schedulers(register):\n"
        "    register('current-constant', lambda step, **kw: 1.0)\n",
        encoding="utf-8",
    )
    series = ".".join(__version__.split(".")[:2])
    _fake_plugin(
        tmp_path,
        "current-plugin",
        [f"llm-core>={series}", "llm-train>=99; extra == 'test'"],
        "current_plugin_module",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(env="current-plugin")
    assert manager.problems == []
    assert manager.registry("schedulers")["current-constant"].plugin == "current-plugin"


def test_version_lists_each_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"scratchlm {__version__}"
    for name, version in installed_versions().items():
        if version is not None:
            assert any(line.split() == [name, version] for line in out), (name, out)


def test_plugins_command_shows_versions_and_incompatible_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_plugin(tmp_path, "future-plugin", ["llm-core>=99.0,<100.0"], "future_plugin_module_absent")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "future-plugin")
    reset_manager()
    try:
        assert main(["plugins"]) == 0
    finally:
        reset_manager()
    out = capsys.readouterr().out
    assert f"scratchlm packages: llm-core {__version__}" in out
    assert "future-plugin (future-plugin 1.0, third-party)" in out
    assert (
        f"error: version: future-plugin 1.0 requires llm-core<100.0,>=99.0, but llm-core {__version__}" in out
    )
