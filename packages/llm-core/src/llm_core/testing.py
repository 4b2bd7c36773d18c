"""pytest plugin for scratchlm and plugin authors (entry point ``pytest11``).

Fixtures:

* ``register_plugin(plugin, name=None)`` registers a plugin object in the
  process-wide manager for one test and removes it afterwards.
* ``isolated_manager`` swaps in a fresh manager (entry points loaded) for one test.
* ``scratchlm_test_data`` is the book-data directory from ``SCRATCHLM_TEST_DATA``;
  tests using it skip when it is unset, or fail when
  ``SCRATCHLM_REQUIRE_TEST_DATA=1`` (as in CI).

``pytest --scratchlm-conformance`` adds the conformance suite: every check
declared with :func:`llm_core.conformance.check` (by the modules listed
under the ``scratchlm_conformance`` entry-point group) runs against every
registered object of its kind.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_core.conformance import checks_for
from llm_core.manager import PluginManager, get_manager, reset_manager
from llm_core.registry import KINDS

__all__ = [
    "isolated_manager",
    "register_plugin",
    "scratchlm_test_data",
]

CONFORMANCE_GROUP = "scratchlm_conformance"
_SUITE = Path(__file__).with_name("conformance_suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scratchlm")
    group.addoption(
        "--scratchlm-conformance",
        action="store_true",
        help="run the scratchlm conformance suite over every registered plugin object",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--scratchlm-conformance", default=False) and str(_SUITE) not in config.args:
        config.args.append(str(_SUITE))


def load_conformance_modules() -> None:
    """Import every module listed under the ``scratchlm_conformance`` entry-point group."""
    for ep in metadata.entry_points(group=CONFORMANCE_GROUP):
        ep.load()


def conformance_cases() -> list[Any]:
    """One ``pytest.param`` per (check, registered object) pair."""
    load_conformance_modules()
    cases = []
    for kind in KINDS:
        registry = get_manager().registry(kind)
        for check in checks_for(kind):
            for name in registry:
                cases.append(pytest.param(check, name, registry[name].obj, id=f"{kind}-{name}-{check.name}"))
    return cases


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
        reason = f"book data not found (SCRATCHLM_TEST_DATA={value!r}); point it at shared/data"
        if os.environ.get("SCRATCHLM_REQUIRE_TEST_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path.resolve()
