"""Cross-package tests run with the built-in plugins only.

The `integration` session installs llm-core's test fixtures (a plugin that fails to import
among them) beside the packages; their warnings would add lines to every command's stderr,
which these tests read. Each test here sees `SCRATCHLM_PLUGINS=""` (built-ins only), and so
does every `scratchlm` it starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_core import reset_manager


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "")
    reset_manager()
    yield
    reset_manager()
