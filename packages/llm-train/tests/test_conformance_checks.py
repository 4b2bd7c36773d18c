"""llm-train's conformance checks pass on the built-ins and catch objects that cannot learn."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm_core import get_registry, hookimpl
from llm_model import GPTModel
from llm_train.conformance import optimizer_fits_a_toy_regression, training_steps_lower_the_loss


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_builtin_optimizers_fit_the_toy_regression(name: str) -> None:
    optimizer_fits_a_toy_regression(name, get_registry("optimizers").get_obj(name))


def test_an_optimizer_that_does_not_move_fails() -> None:
    def frozen(groups: list[dict[str, Any]], *, lr: float, **kw: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(groups, lr=lr * 1e-9)

    with pytest.raises(AssertionError, match="expected at most half"):
        optimizer_fits_a_toy_regression("frozen", frozen)


def test_a_factory_that_returns_no_optimizer_fails() -> None:
    with pytest.raises(AssertionError, match=r"returned a list, expected a torch\.optim\.Optimizer"):
        optimizer_fits_a_toy_regression("broken", lambda groups, lr: [])


class StuckGPT(GPTModel):
    """Logits that no gradient can change (a bias shared by every token does not move cross-entropy)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.shift = torch.nn.Parameter(torch.zeros(()))

    def forward(self, idx: torch.Tensor, **kw: Any) -> torch.Tensor:
        return super().forward(idx, **kw).detach() + self.shift


def test_gpt2_learns_and_a_stuck_architecture_fails(register_plugin: Any) -> None:
    training_steps_lower_the_loss("gpt2", get_registry("architectures").get_obj("gpt2"))

    class Provider:
        @hookimpl
        def register_architectures(self, register: Any) -> None:
            register("stuck-gpt", StuckGPT)

    register_plugin(Provider(), "stuck")
    with pytest.raises(AssertionError, match=r"stuck-gpt: 8 AdamW steps .* expected a drop of at least 10%"):
        training_steps_lower_the_loss("stuck-gpt", StuckGPT)
