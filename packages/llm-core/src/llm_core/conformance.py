"""Conformance checks that every registered plugin object must pass.

Packages declare checks with :func:`check`; ``llm_core.testing`` turns each
(check, registered object) pair into a pytest test. Checks are plain
functions ``check(name, obj)`` that raise ``AssertionError`` on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llm_core.registry import KINDS

__all__ = ["Check", "check", "checks_for"]

CheckFunction = Callable[[str, Any], None]


@dataclass(frozen=True)
class Check:
    """One conformance check for every object of ``kind``."""

    kind: str
    name: str
    function: CheckFunction


_CHECKS: dict[str, dict[str, Check]] = {kind: {} for kind in KINDS}


def check(kind: str) -> Callable[[CheckFunction], CheckFunction]:
    """Decorator: declare ``function(name, obj)`` as a conformance check for ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")

    def decorate(function: CheckFunction) -> CheckFunction:
        _CHECKS[kind][function.__name__] = Check(kind, function.__name__, function)
        return function

    return decorate


def checks_for(kind: str) -> list[Check]:
    """The checks declared for ``kind``, in declaration order."""
    return list(_CHECKS[kind].values())
