"""Optimizer factories get their own options (optimizer_options), checked against their signatures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llm_core.errors import ConfigError
from llm_train.callbacks import Callback, TensorBoardCallback
from llm_train.optimizers import adam, adamw, build_optimizer, optimizer_options, sgd


def test_options_reach_the_optimizer() -> None:
    optimizer = build_optimizer("sgd", nn.Linear(2, 2), lr=0.1, weight_decay=0.0, momentum=0.5, nesterov=True)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.5 and optimizer.param_groups[0]["nesterov"] is True
    adam_w = build_optimizer("adamw", nn.Linear(2, 2), lr=0.1, weight_decay=0.0, eps=1e-6)
    assert adam_w.param_groups[0]["eps"] == 1e-6


def test_built_in_defaults_are_documented_values() -> None:
    assert optimizer_options(adamw)["betas"] == (0.9, 0.95)  # not torch's (0.9, 0.999)
    assert optimizer_options(adam)["betas"] == (0.9, 0.999)
    assert optimizer_options(sgd) == {"momentum": 0.9, "dampening": 0.0, "nesterov": False}
    group = build_optimizer("adamw", nn.Linear(2, 2), lr=0.1, weight_decay=0.0).param_groups[0]
    assert group["betas"] == (0.9, 0.95)


def test_an_unknown_option_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError,
        match=r"optimizer 'adamw' has no option 'momentum'; its optimizer_options: "
        r"betas \(default \(0\.9, 0\.95\)\), eps \(default 1e-08\), amsgrad \(default False\), fused",
    ):
        build_optimizer("adamw", nn.Linear(2, 2), lr=0.1, weight_decay=0.0, momentum=0.9)


def test_betas_never_reach_an_optimizer_without_them() -> None:
    with pytest.raises(ConfigError, match=r"optimizer 'sgd' takes no betas .*momentum \(default 0\.9\)"):
        build_optimizer("sgd", nn.Linear(2, 2), lr=0.1, weight_decay=0.0, betas=(0.9, 0.95))


def test_a_factory_with_kwargs_is_not_checked(register_plugin) -> None:
    from llm_core import hookimpl

    seen = {}

    def anything(groups, *, lr, **options):
        seen.update(options)
        return torch.optim.SGD(groups, lr=lr)

    class Provider:
        @hookimpl
        def register_optimizers(self, register):
            register("anything", anything)

    register_plugin(Provider(), "test-anything")
    build_optimizer("anything", nn.Linear(2, 2), lr=0.1, weight_decay=0.0, whatever=3)
    assert seen == {"whatever": 3}


def test_callbacks_base_class_has_every_hook_as_a_no_op() -> None:
    callback = Callback()
    for hook in ("on_train_start", "on_train_end"):
        assert getattr(callback, hook)(object()) is None
    for hook in ("on_step_end", "on_eval_end"):
        assert getattr(callback, hook)(object(), {"step": 1}) is None
    assert issubclass(TensorBoardCallback, Callback)


def _trainer(tmp_path, **overrides):
    from tiny_setup import synthetic_tokens, tiny_config

    from llm_model import build_model
    from llm_train import Trainer

    config = tiny_config(**overrides)
    model = build_model("gpt2", preset="tiny", **config.model)
    tokens = synthetic_tokens()
    return Trainer(
        model, config, train_tokens=tokens[:1800], val_tokens=tokens[1800:], run_dir=tmp_path / "run"
    )


def test_the_trainer_passes_the_configs_optimizer_options(tmp_path) -> None:
    trainer = _trainer(tmp_path, optimizer="sgd", optimizer_options={"momentum": 0.5})
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert {g["momentum"] for g in trainer.optimizer.param_groups} == {0.5}


def test_the_trainer_refuses_betas_for_sgd_before_training(tmp_path) -> None:
    with pytest.raises(ConfigError, match="optimizer 'sgd' takes no betas"):
        _trainer(tmp_path, optimizer="sgd", betas=[0.9, 0.95])
