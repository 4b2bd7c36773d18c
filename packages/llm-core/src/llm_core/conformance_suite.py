"""The conformance suite collected by ``pytest -p llm_core.testing`` (or ``--scratchlm-conformance``)."""

from __future__ import annotations

import pytest

from llm_core.conformance import Check, NotApplicable, run_check
from llm_core.errors import PluginError
from llm_core.registry import Entry
from llm_core.testing import conformance_cases


@pytest.mark.parametrize(("check", "entry"), conformance_cases())
def test_conformance(check: Check, entry: Entry | PluginError) -> None:
    """Run one conformance check on one registered object (a name two plugins claim fails)."""
    if isinstance(entry, PluginError):
        raise entry
    try:
        run_check(check, entry)
    except NotApplicable as exc:
        pytest.skip(f"{check.kind[:-1]} '{entry.name}': {check.name} does not apply: {exc}")
