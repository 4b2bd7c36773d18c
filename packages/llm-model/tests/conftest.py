"""Shared fixtures: tiny models (emb 32-64, 2 layers, ctx 32) and a tiny word tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from llm_model import GPTConfig, GPTModel

TINY = {"vocab_size": 97, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0}


@pytest.fixture
def make_model() -> Callable[..., GPTModel]:
    """Build a seeded tiny GPTModel in eval mode: ``make_model(**overrides)``."""

    def make(seed: int = 0, **overrides: Any) -> GPTModel:
        torch.manual_seed(seed)
        return GPTModel(GPTConfig(**{**TINY, **overrides})).eval()

    return make


@pytest.fixture
def model(make_model: Callable[..., GPTModel]) -> GPTModel:
    return make_model()


class CharTokenizer:
    """A tokenizer over printable ASCII: id = ord(c) - 32 (95 ids), plus end-of-text 96."""

    n_vocab = 97
    eos_id = 96

    def encode(self, text: str) -> list[int]:
        return [ord(c) - 32 for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i + 32) if i < 95 else "" for i in ids)


@pytest.fixture
def tokenizer() -> CharTokenizer:
    return CharTokenizer()
