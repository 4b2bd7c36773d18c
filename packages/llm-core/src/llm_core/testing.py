"""pytest plugin for scratchlm and plugin authors (entry point ``pytest11``).

Fixtures:

* ``register_plugin(plugin, name=None)`` registers a plugin object in the
  process-wide manager for one test and removes it afterwards.
* ``isolated_manager`` swaps in a fresh manager (entry points loaded) for one test.
* ``scratchlm_test_data`` is the book-data directory from ``SCRATCHLM_TEST_DATA``;
  tests using it skip when it is unset, or fail when
  ``SCRATCHLM_REQUIRE_TEST_DATA=1`` (as in CI).

The conformance suite: every check declared with
:func:`llm_core.conformance.check` (by the modules listed under the
``scratchlm_conformance`` entry-point group) runs against every registered
object of its kind. It is collected when any of these is given:

* ``pytest -p llm_core.testing`` (naming this plugin explicitly; it is also
  auto-loaded through its ``pytest11`` entry point, where ``-p`` alone would
  change nothing, so the explicit name is what turns the suite on);
* ``pytest --scratchlm-conformance``;
* ``scratchlm_conformance = true`` in the ``[tool.pytest.ini_options]`` table.

``--scratchlm-plugin NAME`` (repeatable; ini ``scratchlm_plugins``) limits
the suite to the objects registered by those plugins (entry-point or
distribution names), so a plugin's own test run checks only what it adds.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_core.conformance import checks_for, skip_reason
from llm_core.errors import PluginError
from llm_core.manager import PluginManager, get_manager, reset_manager
from llm_core.registry import KINDS, Registry

__all__ = [
    "conformance_cases",
    "conformance_requested",
    "isolated_manager",
    "register_plugin",
    "scratchlm_test_data",
]

CONFORMANCE_GROUP = "scratchlm_conformance"
_SUITE = Path(__file__).with_name("conformance_suite.py")


PLUGIN_NAME = "llm_core.testing"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scratchlm")
    group.addoption(
        "--scratchlm-conformance",
        action="store_true",
        help="run the scratchlm conformance suite over every registered plugin object "
        "(also turned on by `-p llm_core.testing`)",
    )
    group.addoption(
        "--scratchlm-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="limit the conformance suite to objects registered by this plugin "
        "(entry-point or distribution name; repeatable)",
    )
    parser.addini(
        "scratchlm_conformance", type="bool", default=False, help="always run the scratchlm conformance suite"
    )
    parser.addini(
        "scratchlm_plugins",
        type="args",
        default=[],
        help="plugins whose objects the conformance suite checks",
    )


def _named_explicitly(config: pytest.Config) -> bool:
    """Whether ``-p llm_core.testing`` was given (on the command line or in addopts)."""
    plugins = config.getoption("plugins", default=None) or []
    return PLUGIN_NAME in plugins


def conformance_requested(config: pytest.Config) -> bool:
    """Whether this session collects the conformance suite."""
    return bool(
        config.getoption("--scratchlm-conformance", default=False)
        or _named_explicitly(config)
        or config.getini("scratchlm_conformance")
    )


#: The ``--scratchlm-plugin`` names of this session (set by :func:`pytest_configure`).
_PLUGIN_FILTER: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    global _PLUGIN_FILTER
    _PLUGIN_FILTER = [
        *config.getoption("--scratchlm-plugin", default=[]),
        *config.getini("scratchlm_plugins"),
    ]
    if conformance_requested(config) and str(_SUITE) not in config.args:
        config.args.append(str(_SUITE))


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def load_conformance_modules() -> None:
    """Import every module listed under the ``scratchlm_conformance`` entry-point group."""
    for ep in metadata.entry_points(group=CONFORMANCE_GROUP):
        ep.load()


def _selected_plugins(only: Iterable[str]) -> set[str] | None:
    """Plugin (entry-point) names matching ``only`` by entry-point or distribution name; None = all."""
    wanted = {_normalise(n) for n in only if n.strip()}
    if not wanted:
        return None
    infos = get_manager().plugins()
    selected = {i.name for i in infos if {_normalise(i.name), _normalise(i.distribution or i.name)} & wanted}
    missing = wanted - {_normalise(i.name) for i in infos} - {_normalise(i.distribution or "") for i in infos}
    if missing:
        known = ", ".join(sorted(i.name for i in infos)) or "none"
        raise PluginError(
            f"--scratchlm-plugin {', '.join(sorted(missing))}: no such plugin is loaded; "
            f"loaded plugins: {known}. Install the plugin (pip install -e .) or fix the name"
        )
    return selected


def conformance_cases(only: Iterable[str] | None = None) -> list[Any]:
    """One ``pytest.param(check, entry)`` per (check, registered object) pair.

    ``only`` limits the objects to those of the named plugins (default: the
    ``--scratchlm-plugin`` options of this session). Objects whose
    ``conformance_skip`` meta names a check get a skipped case.
    """
    load_conformance_modules()
    selected = _selected_plugins(_PLUGIN_FILTER if only is None else only)
    cases = []
    for kind in KINDS:
        registry = get_manager().registry(kind)
        for check in checks_for(kind):
            for name in registry:
                conflict = registry._conflicts.get(name)  # a name two plugins claim: one failing case
                if conflict:
                    if selected is None or {e.plugin for e in conflict} & selected:
                        error = registry_error(registry, name)
                        cases.append(pytest.param(check, error, id=f"{kind}-{name}-{check.name}"))
                    continue
                entry = registry[name]
                if selected is not None and entry.plugin not in selected:
                    continue
                reason = skip_reason(check, entry)
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                cases.append(pytest.param(check, entry, id=f"{kind}-{name}-{check.name}", marks=marks))
    return cases


def registry_error(registry: Registry, name: str) -> PluginError:
    """The error looking ``name`` up raises (a name claimed by two plugins)."""
    try:
        registry[name]
    except PluginError as exc:
        return exc
    raise ValueError(f"{registry.kind} '{name}' can be looked up")  # pragma: no cover - caller's bug


@pytest.fixture
def isolated_manager() -> Iterator[PluginManager]:
    """A fresh process-wide plugin manager for one test; the previous one is restored."""
    previous = get_manager()
    manager = PluginManager()
    reset_manager(manager)
    try:
        yield manager
    finally:
        reset_manager(previous)


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., str]]:
    """Register plugin objects for one test: ``register_plugin(plugin, name=None) -> name``."""
    manager = get_manager()
    names: list[str] = []

    def register(plugin: object, name: str | None = None, **kwargs: Any) -> str:
        registered = manager.register(plugin, name, **kwargs)
        names.append(registered)
        return registered

    try:
        yield register
    finally:
        for name in names:
            manager.unregister(name)


@pytest.fixture
def scratchlm_test_data() -> Path:
    """The book data directory (``SCRATCHLM_TEST_DATA``); skip, or fail in CI, when absent."""
    value = os.environ.get("SCRATCHLM_TEST_DATA")
    path = Path(value) if value else None
    if path is None or not path.is_dir():
        reason = (
            f"book data not found (SCRATCHLM_TEST_DATA={value!r}); point it at a folder of the "
            "book's files (scratchlm download --out DIR)"
        )
        if os.environ.get("SCRATCHLM_REQUIRE_TEST_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path.resolve()
