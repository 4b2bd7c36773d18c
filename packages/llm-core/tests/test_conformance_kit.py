"""The conformance-suite plumbing: checks declared per kind run against registered objects."""

from __future__ import annotations

from typing import Any

import pytest
from llm_core import hookimpl
from llm_core.conformance import check, checks_for
from llm_core.testing import conformance_cases

pytest_plugins = ["pytester"]


def test_declared_check_runs_against_each_registered_object(register_plugin: Any) -> None:
    class Provider:
        @hookimpl
        def register_schedulers(self, register: Any) -> None:
            register("kit-constant", lambda step, **kw: 1.0)
            register("kit-broken", lambda step, **kw: -1.0)

    @check("schedulers")
    def multiplier_is_non_negative(name: str, obj: Any) -> None:
        assert obj(0, max_steps=10) >= 0, f"{name} returned a negative multiplier"

    register_plugin(Provider(), "kit")
    assert multiplier_is_non_negative in [c.function for c in checks_for("schedulers")]
    cases = {p.id: p.values for p in conformance_cases() if p.id.startswith("schedulers-kit")}
    assert set(cases) == {
        "schedulers-kit-constant-multiplier_is_non_negative",
        "schedulers-kit-broken-multiplier_is_non_negative",
    }
    c, name, obj = cases["schedulers-kit-constant-multiplier_is_non_negative"]
    c.function(name, obj)
    c, name, obj = cases["schedulers-kit-broken-multiplier_is_non_negative"]
    with pytest.raises(AssertionError, match="kit-broken returned a negative"):
        c.function(name, obj)


def test_check_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'widgets'"):
        check("widgets")


def test_conformance_option_collects_the_suite(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--scratchlm-conformance", "-q", "--co")
    assert "::test_conformance[" in result.stdout.str()
    without = pytester.runpytest_subprocess("-q", "--co")
    assert "conformance_suite.py" not in without.stdout.str()
