"""A check that does not apply to an object raises NotApplicable: a skip with its reason, not a pass."""

from __future__ import annotations

import pytest

from llm_core.conformance import Check, ConformanceFailure, NotApplicable, run_check
from llm_core.conformance_suite import test_conformance as suite_case
from llm_core.registry import Entry


def optional_capability(name: str, obj: object) -> None:
    """Only for objects that declare `fancy`."""
    if not getattr(obj, "fancy", False):
        raise NotApplicable("it does not declare fancy = True")
    raise AssertionError(f"{name} is fancy but wrong")


CHECK = Check("tokenizers", "optional_capability", optional_capability)


class Plain:
    pass


class Fancy:
    fancy = True


def test_not_applicable_passes_through_run_check_and_the_suite_skips() -> None:
    entry = Entry("plain", Plain, "example", "0.1.0")
    with pytest.raises(NotApplicable, match="does not declare fancy"):
        run_check(CHECK, entry)
    with pytest.raises(pytest.skip.Exception, match=r"tokenizer 'plain': optional_capability does not apply"):
        suite_case(CHECK, entry)


def test_a_check_that_applies_still_fails_loudly() -> None:
    with pytest.raises(ConformanceFailure, match="fancy is fancy but wrong"):
        run_check(CHECK, Entry("fancy", Fancy, "example", "0.1.0"))
