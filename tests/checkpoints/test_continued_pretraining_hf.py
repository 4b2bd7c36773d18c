"""`scratchlm pretrain --init` from weights in the Hugging Face layout (transformers saves them here)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llm_core.cli import main


def test_init_from_a_hugging_face_directory(scratchlm_test_data: Path, tmp_path: Path) -> None:
    import transformers

    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=50257)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "hf", safe_serialization=True)
    out = tmp_path / "run"
    args = [
        "pretrain",
        "--init",
        str(tmp_path / "hf"),
        "--data",
        str(scratchlm_test_data / "the-verdict.txt"),
    ]
    args += ["--out", str(out), "--max-steps", "2", "--batch-size", "2", "--set", "progress=false"]
    assert main(args) == 0
    saved = json.loads((out / "final" / "config.json").read_text(encoding="utf-8"))
    assert saved["architecture"] == "gpt2" and saved["tokenizer"] == "gpt2"
    assert saved["context_length"] == 64 and saved["emb_dim"] == 32
