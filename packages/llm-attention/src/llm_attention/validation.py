"""Size checks shared by the attention modules: loud :class:`~llm_core.errors.ConfigError` messages.

Every message says what was expected, what was found and which values would work,
for example ``n_heads=5 does not divide d_out=64; choose n_heads from 1, 2, 4, 8, 16, 32, 64``.
"""

from __future__ import annotations

from llm_core.errors import ConfigError

__all__ = ["check_dropout", "check_heads", "check_kv_heads", "check_positive", "divisors"]


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n`` in increasing order (``divisors(12) == [1, 2, 3, 4, 6, 12]``)."""
    return [d for d in range(1, n + 1) if n % d == 0]


def _choices(n: int, limit: int = 12) -> str:
    values = divisors(n)
    shown = ", ".join(map(str, values[:limit]))
    return shown + (", …" if len(values) > limit else "")


def check_positive(name: str, value: object) -> int:
    """``value`` must be a positive integer (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_dropout(value: object) -> float:
    """A dropout probability in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"dropout must be a probability in [0, 1), got {value!r}")
    return float(value)


def check_heads(d_out: int, n_heads: int, n_kv_heads: int | None = None) -> int:
    """Check that heads split ``d_out`` evenly and key/value heads group the query heads.

    Returns the number of key/value heads (``n_heads`` when ``n_kv_heads`` is None).
    """
    check_positive("d_out", d_out)
    check_positive("n_heads", n_heads)
    if d_out % n_heads:
        raise ConfigError(
            f"n_heads={n_heads} does not divide d_out={d_out}; choose n_heads from {_choices(d_out)}"
        )
    if n_kv_heads is None:
        return n_heads
    check_kv_heads(n_heads, n_kv_heads)
    return n_kv_heads


def check_kv_heads(n_heads: int, n_kv_heads: int) -> None:
    """Grouped-query attention: ``n_kv_heads`` must divide ``n_heads``."""
    if not isinstance(n_kv_heads, int) or isinstance(n_kv_heads, bool) or n_kv_heads < 1:
        raise ConfigError(
            f"n_kv_heads must be a positive integer, got {n_kv_heads!r}; "
            f"choose from {_choices(n_heads)} (1 = multi-query attention)"
        )
    if n_heads % n_kv_heads:
        raise ConfigError(
            f"n_kv_heads={n_kv_heads} does not divide n_heads={n_heads}; "
            f"choose n_kv_heads from {_choices(n_heads)} (1 = multi-query attention)"
        )
