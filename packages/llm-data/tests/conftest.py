"""Shared fixtures: the GPT-2 tokenizer and the book's short story."""

from __future__ import annotations

import pytest

from llm_data import get_tokenizer


@pytest.fixture(scope="session")
def gpt2():
    return get_tokenizer("gpt2")


@pytest.fixture
def verdict_text(scratchlm_test_data) -> str:
    return (scratchlm_test_data / "the-verdict.txt").read_text(encoding="utf-8")
