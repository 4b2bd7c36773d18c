"""Fixtures; the helpers live in tiny_setup.py so training subprocesses can import them too."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_setup import synthetic_tokens


@pytest.fixture
def tokens() -> np.ndarray:
    """2000 tokens of a repeated phrase: a tiny model learns it in a few dozen steps."""
    return synthetic_tokens()
