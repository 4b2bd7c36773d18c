"""The conformance-suite plumbing: checks declared per kind run against registered objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_core import PluginError, conformance, hookimpl
from llm_core.conformance import ConformanceFailure, check, checks_for, run_check
from llm_core.registry import Entry
from llm_core.testing import conformance_cases

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _isolated_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Checks declared by a test disappear after it (the declared-checks table is copied).

    Checks that a package's module declared while the test ran (its first import, through a
    plugin manager) are kept: the module will not be imported, nor declare them, again.
    """
    original = conformance._CHECKS
    monkeypatch.setattr(conformance, "_CHECKS", {k: dict(v) for k, v in original.items()})
    yield
    for kind, checks in conformance._CHECKS.items():
        for name, declared in checks.items():
            if declared.function.__module__ != __name__:
                original[kind].setdefault(name, declared)


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
    c, entry = cases["schedulers-kit-constant-multiplier_is_non_negative"]
    run_check(c, entry)
    c, entry = cases["schedulers-kit-broken-multiplier_is_non_negative"]
    with pytest.raises(AssertionError, match="kit-broken returned a negative"):
        run_check(c, entry)


def test_check_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'widgets'"):
        check("widgets")


def test_failure_names_the_plugin_and_the_check() -> None:
    @check("schedulers")
    def kit_never_negative(name: str, obj: Any) -> None:
        """The multiplier is never negative."""
        assert obj(0, max_steps=1) >= 0, f"{name} returned {obj(0, max_steps=1)}"

    def raises(step: int, **kw: Any) -> float:
        raise TypeError("max_steps missing")

    c = next(c for c in checks_for("schedulers") if c.name == "kit_never_negative")
    bad = Entry("kit-bad", lambda step, **kw: -2.0, "kit-plugin", "1.2.3")
    with pytest.raises(ConformanceFailure) as info:
        run_check(c, bad)
    assert str(info.value).startswith(
        "scheduler 'kit-bad' registered by plugin 'kit-plugin' 1.2.3 fails kit_never_negative "
        "(The multiplier is never negative): kit-bad returned -2.0"
    )
    with pytest.raises(ConformanceFailure, match=r"plugin 'kit-plugin'.*TypeError: max_steps missing"):
        run_check(c, Entry("kit-raises", raises, "kit-plugin", None))


@pytest.mark.parametrize("declared", [["kit_opt_out"], {"kit_opt_out": "not supported yet"}, "kit_opt_out"])
def test_conformance_skip_meta_skips_only_the_named_check(register_plugin: Any, declared: Any) -> None:
    @check("schedulers")
    def kit_opt_out(name: str, obj: Any) -> None:
        raise AssertionError("must not run")

    @check("schedulers")
    def kit_still_runs(name: str, obj: Any) -> None:
        pass

    class Provider:
        @hookimpl
        def register_schedulers(self, register: Any) -> None:
            register("kit-skipper", lambda step, **kw: 1.0, conformance_skip=declared)

    register_plugin(Provider(), "kit-skip")
    cases = {p.id: p for p in conformance_cases(only=["kit-skip"])}
    skipped = cases["schedulers-kit-skipper-kit_opt_out"]
    assert [m.name for m in skipped.marks] == ["skip"]
    reason = skipped.marks[0].kwargs["reason"]
    assert "plugin 'kit-skip'" in reason and "kit_opt_out" in reason
    if isinstance(declared, dict):
        assert reason.endswith(": not supported yet")
    assert not cases["schedulers-kit-skipper-kit_still_runs"].marks


def test_only_limits_cases_to_the_named_plugins(register_plugin: Any) -> None:
    class Provider:
        @hookimpl
        def register_schedulers(self, register: Any) -> None:
            register("kit-only", lambda step, **kw: 1.0)

    class Other:
        @hookimpl
        def register_schedulers(self, register: Any) -> None:
            register("kit-other", lambda step, **kw: 1.0)

    @check("schedulers")
    def kit_any(name: str, obj: Any) -> None:
        pass

    register_plugin(Provider(), "kit-only-plugin")
    register_plugin(Other(), "kit-other-plugin")
    ids = {p.id for p in conformance_cases(only=["kit_only_plugin"])}  # names are normalised
    assert ids == {"schedulers-kit-only-kit_any"}
    assert {"schedulers-kit-only-kit_any", "schedulers-kit-other-kit_any"} <= {
        p.id for p in conformance_cases()
    }


def test_only_with_an_unknown_plugin_is_an_error() -> None:
    with pytest.raises(PluginError, match="--scratchlm-plugin no-such-plugin: no such plugin is loaded"):
        conformance_cases(only=["no-such-plugin"])


_CHECKS_CONFTEST = """
from llm_core.conformance import check

@check("tokenizers")
def round_trips_text(name, obj):
    \"\"\"decode(encode(text)) == text.\"\"\"
    tok = obj()
    assert tok.decode(tok.encode("héllo")) == "héllo", f"{name} loses text"

@check("tokenizers")
def encodes_to_nothing(name, obj):
    \"\"\"A deliberately failing check.\"\"\"
    assert obj().encode("a") == [], f"{name} encodes 'a' to {obj().encode('a')}"
"""


@pytest.mark.parametrize(
    "how",
    [["-p", "llm_core.testing"], ["-pllm_core.testing"], ["--scratchlm-conformance"], ["ini"]],
    ids=["-p", "-pNAME", "option", "ini"],
)
def test_every_documented_way_collects_the_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: list[str]
) -> None:
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "example")  # not the fixture that duplicates it
    pytester.makeconftest(_CHECKS_CONFTEST)
    if how == ["ini"]:
        pytester.makeini("[pytest]\nscratchlm_conformance = true\n")
        how = []
    result = pytester.runpytest_subprocess(*how, "--scratchlm-plugin", "example", "-q", "--co")
    assert "::test_conformance[tokenizers-example-chars-round_trips_text]" in result.stdout.str()


def test_without_a_request_the_suite_is_not_collected(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(_CHECKS_CONFTEST)
    result = pytester.runpytest_subprocess("-q", "--co")
    assert "conformance_suite.py" not in result.stdout.str()


def test_suite_run_reports_the_failing_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "example")
    pytester.makeconftest(_CHECKS_CONFTEST)
    result = pytester.runpytest_subprocess("-p", "llm_core.testing", "--scratchlm-plugin", "example", "-q")
    result.assert_outcomes(passed=1, failed=1)
    assert (
        "ConformanceFailure: tokenizer 'example-chars' registered by plugin 'example' 0.1.0 "
        "fails encodes_to_nothing (A deliberately failing check): example-chars encodes 'a' to [97]"
    ) in result.stdout.str()


def test_a_name_claimed_by_two_plugins_is_one_failing_case(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "example,duplicate")
    pytester.makeconftest(_CHECKS_CONFTEST)
    result = pytester.runpytest_subprocess("-p", "llm_core.testing", "--scratchlm-plugin", "example", "-q")
    result.assert_outcomes(failed=2)  # both checks of the duplicated name; collection still works
    result.stdout.fnmatch_lines(["*PluginError: tokenizer 'example-chars' is registered by both*"])
