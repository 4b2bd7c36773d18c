"""The generated reference pages (CLI, config fields) are committed in docs/reference/ and up to date."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DOCS = Path(__file__).resolve().parent.parent / "docs"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_reference", module)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_pages_match_the_code() -> None:
    """Built-in plugins only (tests/conftest.py), as the generator runs."""
    gen = generator()
    stale = gen.stale_reference_pages()
    assert not stale, f"{', '.join('docs/' + s for s in stale)} out of date: run python docs/gen_reference.py"


def test_the_pages_are_reachable_from_a_checkout() -> None:
    for name in ("reference/cli.md", "reference/config.md", "reference/hooks.md"):
        assert (DOCS / name).is_file(), name
    assert "## `scratchlm evaluate`" in (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert "## `TrainConfig`" in (DOCS / "reference" / "config.md").read_text(encoding="utf-8")
