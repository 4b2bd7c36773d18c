"""The conformance suite collected by ``pytest --scratchlm-conformance``."""

from __future__ import annotations

from typing import Any

import pytest

from llm_core.conformance import Check
from llm_core.testing import conformance_cases


@pytest.mark.parametrize(("check", "name", "obj"), conformance_cases())
def test_conformance(check: Check, name: str, obj: Any) -> None:
    """Run one conformance check on one registered object."""
    check.function(name, obj)
