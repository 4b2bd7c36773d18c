"""The architecture conformance checks of llm_model.conformance pass for gpt2 and catch broken models."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm_core import get_registry
from llm_core.conformance import NotApplicable, checks_for
from llm_core.errors import ConfigError
from llm_core.testing import conformance_cases
from llm_model import GPTModel, TransformerBlock
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
        "left_padding_matches_unpadded_rows",
        "init_weights_covers_every_parameter",
        "blocks_follow_the_block_contract",
    }
    ids = {p.id for p in conformance_cases()}
    assert {f"architectures-gpt2-{name}" for name in names} <= ids


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
@pytest.mark.parametrize("arch", ["gpt2", "llama", "mistral", "phi"])
def test_the_built_in_architectures_pass(check: Any, arch: str) -> None:
    check.function(arch, get_registry("architectures").get_obj(arch))


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


class PaddingBlindGPT(GPTModel):
    """A broken model: it declares padding support but drops the mask."""

    def forward(self, idx: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        kwargs.pop("padding_mask", None)
        return super().forward(idx, **kwargs)


def test_the_padding_check_catches_a_model_that_ignores_the_mask() -> None:
    with pytest.raises(AssertionError, match="row 0 of the padded batch differs from the row alone"):
        model_conformance.left_padding_matches_unpadded_rows("gpt2", PaddingBlindGPT)


def test_the_padding_check_does_not_apply_to_a_model_that_does_not_declare_padding() -> None:
    class NoPadding(PaddingBlindGPT):
        accepts_padding_mask = False

    with pytest.raises(NotApplicable, match="does not declare accepts_padding_mask"):
        model_conformance.left_padding_matches_unpadded_rows("gpt2", NoPadding)


class Gate(torch.nn.Module):
    """A parameter init_weights has no rule for (and no reset_parameters())."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.zeros(3))


class GatedGPT(GPTModel):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.gate = Gate()


def test_the_init_check_catches_a_parameter_init_weights_does_not_know() -> None:
    with pytest.raises(ConfigError, match=r"gate\.alpha"):
        model_conformance.init_weights_covers_every_parameter("gpt2", GatedGPT)


class OldSignatureBlock(TransformerBlock):
    """A broken block: forward(x) only, so a KV cache or padding mask cannot reach it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)


class OldSignatureGPT(GPTModel):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.trf_blocks = torch.nn.ModuleList([OldSignatureBlock(config) for _ in range(config.n_layers)])


def test_the_block_contract_check_catches_a_block_without_the_keywords() -> None:
    with pytest.raises(AssertionError, match=r"trf_blocks\[0\] \(OldSignatureBlock\)\.forward does not take"):
        model_conformance.blocks_follow_the_block_contract("gpt2", OldSignatureGPT)
