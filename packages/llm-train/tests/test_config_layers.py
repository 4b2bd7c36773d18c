"""TrainConfig = OptimConfig + pretraining's inputs; file < --set < named options; None overrides count."""

from __future__ import annotations

import dataclasses

import pytest

from llm_core.errors import ConfigError
from llm_train.config import OptimConfig, TrainConfig, load_config, load_train_config


def test_train_config_is_optim_config_plus_inputs() -> None:
    optim = {f.name for f in dataclasses.fields(OptimConfig)}
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    assert optim < train
    inputs = {"data", "init", "arch", "preset", "model", "tokenizer", "context_length", "split", "sampling"}
    assert inputs <= train - optim
    assert {"lr", "optimizer", "optimizer_options", "grad_clip", "betas", "eval_every", "seed"} <= optim


def test_set_null_takes_effect(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("grad_clip = 0.5\nlr = 1e-3\n", encoding="utf-8")
    cfg = load_train_config(path, sets={"grad_clip": None})
    assert cfg.grad_clip is None  # --set grad_clip=null turns clipping off
    assert cfg.lr == 1e-3


def test_named_options_skip_none_and_win_over_sets(tmp_path) -> None:
    cfg = load_train_config(None, sets={"lr": 2e-3, "seed": 7}, lr=5e-3, seed=None)
    assert cfg.lr == 5e-3 and cfg.seed == 7


def test_dotted_sets_reach_into_tables() -> None:
    cfg = load_config(OptimConfig, None, sets={"optimizer_options.momentum": 0.8})
    assert cfg.optimizer_options == {"momentum": 0.8}
    cfg = load_train_config(None, sets={"model.n_layers": 3, "model.drop_rate": 0.0})
    assert cfg.model == {"n_layers": 3, "drop_rate": 0.0}


def test_max_steps_set_replaces_the_files_epochs(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"epochs": 2}', encoding="utf-8")
    assert load_train_config(path, sets={"max_steps": 5}).max_steps == 5


def test_unknown_or_misplaced_set_key_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(None, sets={"grad_clipp": None})
    with pytest.raises(ConfigError, match="'lr': expected a number"):
        load_train_config(None, sets={"lr.x": 1})
    path = tmp_path / "c.toml"
    path.write_text("lr = 1e-3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'lr' is 0\.001, not a table"):
        load_train_config(path, sets={"lr.x": 1})
