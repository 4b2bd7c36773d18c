"""A model too large for the machine is refused in one line before anything is allocated (issue 19, point 3).

A checkpoint whose config.json says ``n_layers=100000, emb_dim=100000`` (about 48 PB
of fp32 parameters): ``generate``, ``chat``, ``serve``, ``evaluate`` and ``pretrain``
each print one line with the estimate and the limit and exit 2, within seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from llm_core.cli import main
from llm_model import GPTConfig, GPTModel, save_pretrained

HUGE = {"n_layers": 100_000, "emb_dim": 100_000, "n_heads": 10}


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=300, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    directory = save_pretrained(GPTModel(config), tmp_path / "huge", tokenizer="bpe")
    data = json.loads((directory / "config.json").read_text())
    data.pop("sha256", None)  # edited by hand: an unverified config
    (directory / "config.json").write_text(json.dumps(data | HUGE))
    return directory


def refused(capsys: pytest.CaptureFixture[str], *argv: str, unit: str = "PB") -> str:
    start = time.perf_counter()
    code = main(list(argv))
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert elapsed < 120 and err.count("\n") == 1 and "Traceback" not in err
    assert f" {unit}, more than the " in err and "available" in err and "--force" in err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "{ckpt}", "hello"],
        ["chat", "{ckpt}"],
        ["serve", "{ckpt}", "--port", "0"],
        ["evaluate", "perplexity", "{ckpt}", "--text", "{text}"],
    ],
    ids=["generate", "chat", "serve", "evaluate"],
)
def test_loading_commands_refuse_a_huge_config(
    argv: list[str], huge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "text.txt"
    text.write_text("hello world " * 50)
    err = refused(capsys, *(a.format(ckpt=huge, text=text) for a in argv))
    assert "config.json: the model's parameters (float32) need" in err


def test_pretrain_refuses_a_huge_model_before_reading_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "text.txt"
    text.write_text("hello world " * 50)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"model": HUGE}))
    out = tmp_path / "run"
    err = refused(capsys, "pretrain", "--data", str(text), "--config", str(config), "--out", str(out))
    assert "the weights, gradients and AdamW state (fp32) and the activations of a batch of" in err


def test_pretrain_refuses_a_batch_whose_activations_cannot_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tiny model with a billion sequences a batch: refused from the estimate, nothing sampled."""
    text = tmp_path / "text.txt"
    text.write_text("hello world " * 50)
    out = tmp_path / "run"
    argv = [
        "pretrain",
        "--data",
        str(text),
        "--preset",
        "tiny",
        "--batch-size",
        "1000000000",
        "--out",
        str(out),
    ]
    err = refused(capsys, *argv, unit="TB")
    assert "the activations of a batch of 1000000000 sequences need" in err
    assert "--batch-size or --context-length" in err
    assert not (out / "step-00000001").exists()


def test_the_activation_estimate_is_a_floor_of_what_training_really_holds() -> None:
    """17 fp32 values per token, layer and unit of width: below the measured peak of a real step."""
    from llm_model import build_model
    from llm_train.pretrain import activation_bytes

    model = build_model("gpt2", preset="tiny", drop_rate=0.0)
    batch, length = 4, 64
    estimate = activation_bytes(model.config, batch, length)
    assert estimate == 4 * batch * length * model.config.n_layers * 17 * model.config.emb_dim
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t
    ):
        idx = torch.randint(0, model.config.vocab_size, (batch, length))
        model(idx).logsumexp(-1).mean()
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    assert estimate < sum(saved) - parameters, (estimate, sum(saved))
