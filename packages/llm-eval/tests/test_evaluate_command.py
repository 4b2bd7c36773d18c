"""`scratchlm evaluate NAME MODEL …`: the shared vocabulary, NAME's own --help, and the loading helper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_core.cli import main
from llm_core.errors import ConfigError
from llm_eval import load_model_and_tokenizer


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text("Every effort moves you forward, one small step at a time. " * 8)
    return path


def test_the_model_is_the_positional_model_and_json_prints_one_document(
    gpt2_checkpoint: Path, text: Path, capsys
) -> None:
    argv = ["evaluate", "perplexity", str(gpt2_checkpoint), "--text", str(text), "--stride", "64"]
    assert main([*argv, "--device", "cpu", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["evaluator"] == "perplexity" and report["checkpoint"] == str(gpt2_checkpoint)
    assert report["stride"] == 64 and captured.err == ""


def test_checkpoint_option_still_works_with_a_deprecation_line(
    gpt2_checkpoint: Path, text: Path, capsys
) -> None:
    assert main(["evaluate", "perplexity", "--checkpoint", str(gpt2_checkpoint), "--text", str(text)]) == 0
    captured = capsys.readouterr()
    assert "warning: --checkpoint is deprecated" in captured.err and "positional MODEL" in captured.err
    assert "perplexity:" in captured.out


def test_device_for_an_evaluator_without_a_model_is_one_error_line(capsys) -> None:
    argv = ["evaluate", "accuracy", "--predictions", "[0, 1]", "--labels", "[0, 1]", "--device", "cuda"]
    assert main(argv) == 2
    assert "evaluator 'accuracy' runs no model, so it takes no --device" in capsys.readouterr().err


def test_help_with_a_name_lists_that_evaluators_options(capsys) -> None:
    assert main(["evaluate", "perplexity", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Options of evaluator 'perplexity'" in out
    for option in (
        "MODEL",
        "--text",
        "--prepared",
        "--stride",
        "--batch-size",
        "--max-tokens",
        "--tokenizer",
    ):
        assert option in out, option
    assert "[default: 'val']" in out


def test_help_without_a_name_and_with_an_unknown_name(capsys) -> None:
    for argv, expected in (
        (["evaluate", "--help"], "[MODEL] [EVALUATOR OPTIONS]"),
        (["evaluate", "nope", "--help"], "unknown evaluator 'nope'"),
    ):
        assert main(argv) == 0
        assert expected in capsys.readouterr().out


def test_load_model_and_tokenizer_uses_the_recorded_tokenizer(gpt2_checkpoint: Path) -> None:
    model, tokenizer = load_model_and_tokenizer(gpt2_checkpoint, dtype="bf16")
    assert not model.training and next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.bfloat16"
    assert tokenizer.decode(tokenizer.encode("Hello world")) == "Hello world"
    assert tokenizer.n_vocab == 50257
    same, again = load_model_and_tokenizer(None, "gpt2", model=model)
    assert same is model and again.n_vocab == 50257
    assert load_model_and_tokenizer(None, model=model, with_tokenizer=False)[1] is None


def test_load_model_and_tokenizer_without_a_model_names_the_evaluator() -> None:
    with pytest.raises(
        ConfigError, match=r"words: expected a checkpoint directory .* scratchlm evaluate words MODEL"
    ):
        load_model_and_tokenizer(None, evaluator="words")
