"""Conformance checks that every registered plugin object must pass.

Packages declare checks with :func:`check`; ``llm_core.testing`` turns each
(check, registered object) pair into a pytest test. Checks are plain
functions ``check(name, obj)`` that raise ``AssertionError`` on failure.

An object opts out of a check it cannot support with the registration meta
``conformance_skip``: a list of check names, or a mapping of check name to
the reason shown by pytest::

    register("my-arch", MyModel, conformance_skip={"kv_cache_matches_full_forward": "no KV cache yet"})

A check that does not apply to an object (an optional capability the object
does not declare) raises :class:`NotApplicable` with the reason; pytest shows
it as a skip, not a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_core.registry import KINDS, Entry

__all__ = [
    "Check",
    "ConformanceFailure",
    "NotApplicable",
    "check",
    "checks_for",
    "run_check",
    "skip_reason",
]

CheckFunction = Callable[[str, Any], None]


@dataclass(frozen=True)
class Check:
    """One conformance check for every object of ``kind``."""

    kind: str
    name: str
    function: CheckFunction


class ConformanceFailure(AssertionError):
    """A registered object failed a check; the message names the object, its plugin and the check."""


class NotApplicable(Exception):
    """Raised by a check that does not apply to the object (the message says why); reported as a skip."""


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


def skip_reason(check: Check, entry: Entry) -> str | None:
    """Why ``entry`` opts out of ``check`` (its ``conformance_skip`` meta), or ``None`` to run it."""
    declared = entry.meta.get("conformance_skip") or ()
    if isinstance(declared, str):
        declared = (declared,)
    if check.name not in declared:
        return None
    reason = declared[check.name] if isinstance(declared, Mapping) else None
    where = f"{check.kind[:-1]} '{entry.name}' (plugin '{entry.plugin}')"
    return f"{where} declares conformance_skip for {check.name}" + (f": {reason}" if reason else "")


def run_check(check: Check, entry: Entry) -> None:
    """Run ``check`` on ``entry``; any failure becomes a :class:`ConformanceFailure` naming the plugin.

    :class:`NotApplicable` passes through, for the caller to report as a skip.
    """
    try:
        check.function(entry.name, entry.obj)
    except NotApplicable:
        raise
    except Exception as exc:
        version = f" {entry.version}" if entry.version else ""
        detail = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
        raise ConformanceFailure(
            f"{check.kind[:-1]} '{entry.name}' registered by plugin '{entry.plugin}'{version} "
            f"fails {check.name}{_purpose(check)}: {detail}"
        ) from exc


def _purpose(check: Check) -> str:
    """`` (first line of the check's docstring)``, or nothing."""
    lines = (check.function.__doc__ or "").strip().splitlines()
    return f" ({lines[0].rstrip('.')})" if lines else ""
