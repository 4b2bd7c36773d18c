"""Package ``__init__`` helpers: lazily imported public names and the installed version.

Loading a package's plugin for ``scratchlm --help`` imports the package;
lazy exports (PEP 562) keep that from importing torch until a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["distribution_version", "export_table", "lazy_exports"]


def export_table(text: str) -> dict[str, str]:
    """Public name -> submodule, from lines ``submodule: Name other_name ...``.

    A line without ``submodule:`` continues the previous one. A name listed
    twice is a ``ValueError`` (a package's table is checked when it is imported).
    """
    table: dict[str, str] = {}
    module = ""
    for line in text.splitlines():
        head, colon, names = line.partition(":")
        if colon:
            module = head.strip()
        else:
            names = line
        for name in names.split():
            if not module or name in table:
                raise ValueError(f"export table: {name!r} listed twice or before any 'submodule:'")
            table[name] = module
    return table


def distribution_version(distribution: str) -> str:
    """The installed version of ``distribution`` ("0.0.0" when running from a source tree)."""
    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps public name -> submodule.

    Submodules are given relative to the package (``"bpe"`` for ``llm_data.bpe``).
    A resolved name is cached in ``namespace`` (the package's ``globals()``).
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*exports, "__version__"])

    return __getattr__, __dir__
