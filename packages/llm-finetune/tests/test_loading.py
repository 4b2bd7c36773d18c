"""load_finetuned: the memory check and --dtype, for plain and finetuned checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llm_core.errors import ConfigError
from llm_finetune.checkpoints import load_finetuned
from llm_model import build_model, loading, save_pretrained


@pytest.fixture(params=[None, {"task": "instruct", "template": "alpaca"}], ids=["plain", "finetuned"])
def checkpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("gpt2", "tiny", vocab_size=257)
    extra = {"finetune": request.param} if request.param else None
    return save_pretrained(model, tmp_path / "ckpt", tokenizer="bpe", extra_config=extra)


def test_too_little_memory_is_refused_unless_forced(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loading, "available_memory", lambda device="cpu": (1000, "a test limit"))
    with pytest.raises(
        ConfigError, match=r"parameters \(float32\) need 546.8 KB, more than the 1.0 KB available"
    ):
        load_finetuned(checkpoint)
    with loading.load_options(force=True):
        assert load_finetuned(checkpoint).model.config.n_layers == 2


def test_load_options_dtype_is_applied(checkpoint: Path) -> None:
    with loading.load_options(dtype="bf16"):
        model = load_finetuned(checkpoint).model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_finetuned(checkpoint).model.parameters()} == {torch.float32}
