"""Fixtures: a tiny base checkpoint and small slices of the book's data (written to tmp, never committed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random `tiny` GPT (GPT-2 vocabulary, emb 64, 2 layers, context 64) saved with tokenizer gpt2."""
    from llm_model import build_model, save_pretrained

    torch.manual_seed(0)
    model = build_model("gpt2", "tiny")
    return save_pretrained(model, tmp_path_factory.mktemp("base") / "tiny", tokenizer="gpt2")


@pytest.fixture(scope="session")
def byte_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random `tiny` GPT over the untrained byte-level BPE (257 tokens): fast losses over the vocabulary."""
    from llm_model import build_model, save_pretrained

    torch.manual_seed(0)
    model = build_model("gpt2", "tiny", vocab_size=257)
    return save_pretrained(model, tmp_path_factory.mktemp("base") / "bytes", tokenizer="bpe")


@pytest.fixture
def quiet() -> dict[str, object]:
    """Settings of every training test: checkpoints only at the end, no progress bar."""
    return {"checkpoint_every": 0, "progress": False}


@pytest.fixture
def spam_slice(scratchlm_test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 ham + 100 spam lines of the SMS Spam Collection (label<TAB>text)."""
    lines = (scratchlm_test_data / "SMSSpamCollection").read_text(encoding="utf-8").splitlines()
    ham = [line for line in lines if line.startswith("ham\t")][:200]
    spam = [line for line in lines if line.startswith("spam\t")][:100]
    path = tmp_path_factory.mktemp("spam") / "spam.tsv"
    path.write_text("\n".join(ham + spam) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def instruction_slice(scratchlm_test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 records of instruction-data.json."""
    records = json.loads((scratchlm_test_data / "instruction-data.json").read_text(encoding="utf-8"))[:40]
    path = tmp_path_factory.mktemp("instructions") / "instructions.json"
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def preference_slice(scratchlm_test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 40 records of instruction-data-with-preference.json."""
    path = scratchlm_test_data / "instruction-data-with-preference.json"
    records = json.loads(path.read_text(encoding="utf-8"))[:40]
    out = tmp_path_factory.mktemp("preferences") / "preferences.json"
    out.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return out
