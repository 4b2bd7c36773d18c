"""Helpers shared by the tests and their training subprocesses: a tiny config and synthetic tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from llm_train import TrainConfig

VOCAB = 96


def synthetic_tokens() -> np.ndarray:
    """A learnable stream: a repeated pseudo-random phrase of 50 tokens (2000 tokens)."""
    phrase = np.random.default_rng(0).integers(0, VOCAB, size=50)
    return np.tile(phrase, 40).astype(np.int64)


def tiny_config(**overrides) -> TrainConfig:
    base = dict(
        data="unused",
        preset="tiny",
        model={"vocab_size": VOCAB, "context_length": 32, "emb_dim": 32, "n_heads": 2, "n_layers": 2},
        batch_size=4,
        context_length=16,
        max_steps=12,
        lr=3e-3,
        eval_every=4,
        eval_batches=2,
        checkpoint_every=4,
        keep_last=2,
        log_every=2,
        seed=7,
        progress=False,
    )
    base.update(overrides)
    return TrainConfig(**base)


def weights(path: Path) -> dict:
    return load_file(str(Path(path) / "model.safetensors"))
