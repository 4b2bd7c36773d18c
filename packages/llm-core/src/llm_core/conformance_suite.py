"""The conformance suite collected by ``pytest -p llm_core.testing`` (or ``--scratchlm-conformance``)."""

from __future__ import annotations

import pytest

from llm_core.conformance import Check, run_check
from llm_core.errors import PluginError
from llm_core.registry import Entry
from llm_core.testing import conformance_cases


@pytest.mark.parametrize(("check", "entry"), conformance_cases())
def test_conformance(check: Check, entry: Entry | PluginError) -> None:
    """Run one conformance check on one registered object (a name two plugins claim fails)."""
    if isinstance(entry, PluginError):
        raise entry
    run_check(check, entry)
