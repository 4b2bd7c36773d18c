"""Shared fixtures of the reliability suite (`nox -s reliability`, `nox -s reliability_nightly`).

The suite runs only when asked for: through its nox sessions (which set
``SCRATCHLM_RELIABILITY=1``) or when a path inside ``tests/reliability`` is named
on the command line. A plain ``pytest tests`` (the ``integration`` session)
leaves it out, so CI does not run it twice.

``SCRATCHLM_NIGHTLY=1`` selects the long variants (20 kills instead of 5, 1000
hypothesis examples per property instead of 100, 60 s of atheris per fuzz target). The figures each test
measured (kills survived, examples tried, fuzz inputs run) are printed at the end
of the run and, with ``SCRATCHLM_RELIABILITY_FIGURES=FILE``, written there as JSON.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
NIGHTLY = os.environ.get("SCRATCHLM_NIGHTLY") == "1"
_FIGURES: dict[str, dict[str, Any]] = defaultdict(dict)


def _named_on_command_line(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the suite out of ``pytest tests`` unless the nox session or the command line asks for it."""
    if os.environ.get("SCRATCHLM_RELIABILITY") == "1" or _named_on_command_line(config):
        return None
    return True


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print (and optionally save) what the reliability tests measured."""
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test, values in sorted(_FIGURES.items()):
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        terminalreporter.write_line(f"{test}: {shown}")
    target = os.environ.get("SCRATCHLM_RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def nightly() -> bool:
    """True under ``SCRATCHLM_NIGHTLY=1``: run the long variants."""
    return NIGHTLY


@pytest.fixture(scope="session")
def figures() -> dict[str, dict[str, Any]]:
    """``figures[test][name] = value``: measured numbers reported at the end of the run."""
    return _FIGURES


TRAIN_TOML = """\
data = "{data}"
tokenizer = "{tokenizer}"
preset = "tiny"
max_steps = {max_steps}
batch_size = 4
context_length = 32
lr = 3e-3
eval_every = 5
eval_batches = 2
checkpoint_every = 1
keep_last = 2
log_every = 1
seed = 7
progress = false

[model]
context_length = 32
emb_dim = 32
n_heads = 2
n_layers = 2
drop_rate = 0.1
"""


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 40 kB text (CPython's docs), a 300-id byte-level BPE trained on it, and a tiny-run config maker.

    Returns ``{"dir", "text", "tokenizer"}``; :func:`write_train_config` writes a TOML for it.
    """
    from llm_data import BPETokenizer
    from llm_data.corpora import python_docs_text

    directory = tmp_path_factory.mktemp("corpus")
    text = python_docs_text()[:40_000]
    (directory / "corpus.txt").write_text(text, encoding="utf-8")
    BPETokenizer.train(text, 300).save(directory / "bpe.json")
    return {"dir": directory, "text": directory / "corpus.txt", "tokenizer": directory / "bpe.json"}


@pytest.fixture(scope="session")
def write_train_config(corpus: dict[str, Path]) -> Any:
    """``write_train_config(path, max_steps, extra="")``: a tiny run's config (a checkpoint every
    step, dropout on); ``extra`` is TOML for the top-level table."""

    def write(path: Path, max_steps: int, extra: str = "") -> Path:
        text = TRAIN_TOML.format(data=corpus["text"], tokenizer=corpus["tokenizer"], max_steps=max_steps)
        text = text.replace("\n[model]", f"{extra}\n[model]")
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained GPT named ``tiny-gpt`` with the GPT-2 vocabulary (emb 32, 2 layers, context 256)."""
    import torch

    from llm_model import GPTConfig, GPTModel, save_pretrained

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=50257, context_length=256, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    return save_pretrained(GPTModel(config), tmp_path_factory.mktemp("serve") / "tiny-gpt", tokenizer="gpt2")
