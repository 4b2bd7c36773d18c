"""`scratchlm pretrain` and `scratchlm plot` end to end on the book's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_core.cli import main


def test_pretrain_on_the_verdict_then_resume_longer(
    scratchlm_test_data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(scratchlm_test_data / "the-verdict.txt"), "--preset", "tiny"]
    args += ["--batch-size", "2", "--context-length", "32", "--out", str(out), "--set", "progress=false"]
    assert main([*args, "--max-steps", "4", "--checkpoint-every", "2"]) == 0
    assert (out / "final" / "model.safetensors").is_file()
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["architecture"] == "gpt2" and config["tokenizer"] == "gpt2"
    assert main([*args, "--max-steps", "6", "--checkpoint-every", "2", "--resume"]) == 0
    assert "done: 6 steps" in capsys.readouterr().out
    assert main(["plot", str(out)]) == 0
    assert (out / "loss.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--optimizer", "lion"], "unknown optimizer 'lion'; available: adam, adamw, sgd"),
        (["--set", "lr=-1"], "lr=-1.0 must be > 0"),
        (["--set", "bogus=1"], "unknown key(s) 'bogus'"),
    ],
)
def test_pretrain_bad_input_is_one_line(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    code = main(["pretrain", "--data", str(text), "--out", str(tmp_path / "r"), "--max-steps", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_pretrain_missing_data(tmp_path: Path, capsys) -> None:
    assert main(["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "expected a directory made by `scratchlm prepare` or a UTF-8 .txt file" in capsys.readouterr().err


def test_demo_smoke(tmp_path: Path, capsys) -> None:
    """The README's first command, with a handful of steps: every stage runs and reports."""
    assert main(["demo", "--out", str(tmp_path / "demo"), "--max-steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "Before training: The Python interpreter" in out
    assert "After training:  The Python interpreter" in out
    assert "Validation loss:" in out
    assert (tmp_path / "demo" / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "demo" / "loss.png").is_file()
    config = json.loads((tmp_path / "demo" / "run" / "final" / "config.json").read_text())
    assert config["vocab_size"] == 4096 and config["tokenizer"].endswith("tokenizer.json")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--max-steps", "6"]) == 2  # finished runs are kept
