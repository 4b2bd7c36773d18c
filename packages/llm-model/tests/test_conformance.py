"""The architecture conformance checks of llm_model.conformance pass for gpt2 and catch broken models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm_core.conformance import checks_for
from llm_core.testing import conformance_cases
from llm_model import GPTModel
from llm_model import conformance as model_conformance

CHECKS = [c for c in checks_for("architectures") if c.function.__module__ == model_conformance.__name__]


def test_the_checks_are_declared_and_collected() -> None:
    names = {c.name for c in CHECKS}
    assert names == {
        "is_causal",
        "kv_cache_matches_full_forward",
        "save_load_round_trip",
        "gradients_reach_every_parameter",
        "parameter_count_matches",
    }
    ids = {p.id for p in conformance_cases()}
    assert {f"architectures-gpt2-{name}" for name in names} <= ids


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
def test_gpt2_passes(check: Any) -> None:
    check.function("gpt2", GPTModel)


class LeakyGPT(GPTModel):
    """A broken model: every position sees the mean of all token embeddings (future included)."""

    def forward(self, idx: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        logits = super().forward(idx, **kwargs)
        return logits + logits.mean(dim=1, keepdim=True)


def test_the_causality_check_catches_a_leak() -> None:
    with pytest.raises(AssertionError, match="earlier logits changed"):
        model_conformance.is_causal("gpt2", LeakyGPT)


class FrozenPathGPT(GPTModel):
    """A broken model: the final norm's shift is never used."""

    def forward(self, idx: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        for block in self.trf_blocks:
            x = block(x)
        return self.out_head(x * self.final_norm.scale)


def test_the_gradient_check_catches_an_unused_parameter() -> None:
    with pytest.raises(AssertionError, match=r"final_norm\.shift"):
        model_conformance.gradients_reach_every_parameter("gpt2", FrozenPathGPT)
