"""Evaluator reports: the ``schema`` every evaluator declares, and writing reports to disk.

An evaluator is a callable returning a JSON-serialisable ``dict``; its ``schema``
attribute is the set of top-level keys every report it returns has. Every
report of this package also carries ``"evaluator"`` (the registered name).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from llm_core.config_io import write_json_atomic
from llm_core.errors import ConfigError

__all__ = ["check_report", "evaluator", "json_safe", "write_report"]

F = TypeVar("F", bound=Callable[..., dict[str, Any]])


def evaluator(name: str, keys: Iterable[str]) -> Callable[[F], F]:
    """Decorator: the evaluator ``name``, whose reports have ``keys`` (plus ``evaluator``)."""
    schema = frozenset({"evaluator", *keys})

    def decorate(function: F) -> F:
        function.schema = schema  # type: ignore[attr-defined]
        function.evaluator_name = name  # type: ignore[attr-defined]
        return function

    return decorate


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (strict JSON has no NaN/Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def check_report(name: str, report: Any, schema: Iterable[str]) -> dict[str, Any]:
    """Check that ``report`` is a dict with every key of ``schema`` and serialises to JSON; return it."""
    if not isinstance(report, dict):
        raise ConfigError(f"evaluator '{name}': expected a dict report, got {type(report).__name__}")
    missing = sorted(set(schema) - set(report))
    if missing:
        raise ConfigError(
            f"evaluator '{name}': report lacks key(s) {', '.join(missing)} of its schema; "
            "this is a bug in the evaluator's plugin"
        )
    try:
        json.dumps(report, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"evaluator '{name}': report is not JSON-serialisable ({exc})") from None
    return report


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON, atomically (temp file + fsync + rename)."""
    write_json_atomic(path, json_safe(report))
