"""activation_checkpointing: the same weights as without it (dropout replayed), the same checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_setup import tiny_config, weights

from llm_core.errors import ConfigError
from llm_model import build_model
from llm_train import Trainer


def train(run_dir: Path, tokens: np.ndarray, checkpointing: bool) -> Trainer:
    model_options = {**tiny_config().model, "drop_rate": 0.1}
    config = tiny_config(
        model=model_options,
        max_steps=3,
        eval_every=2,
        checkpoint_every=0,
        activation_checkpointing=checkpointing,
    )
    torch.manual_seed(config.seed)
    model = build_model(config.arch, preset=config.preset, **config.model)
    trainer = Trainer(model, config, run_dir=run_dir, train_tokens=tokens[:1800], val_tokens=tokens[1800:])
    trainer.fit()
    return trainer


def test_checkpointing_gives_the_same_weights(tmp_path: Path, tokens: np.ndarray) -> None:
    plain = train(tmp_path / "plain", tokens, False)
    checkpointed = train(tmp_path / "checkpointed", tokens, True)
    assert checkpointed.last_val == plain.last_val
    saved, expected = weights(tmp_path / "checkpointed" / "final"), weights(tmp_path / "plain" / "final")
    assert saved.keys() == expected.keys()  # the parameter names do not change
    assert all(torch.equal(saved[k], expected[k]) for k in expected)


def test_checkpointing_needs_transformer_blocks(tmp_path: Path, tokens: np.ndarray) -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(96, 8))
    model.config = build_model("gpt2", preset="tiny", vocab_size=96).config  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="trf_blocks"):
        Trainer(model, tiny_config(activation_checkpointing=True), run_dir=tmp_path, train_tokens=tokens)
