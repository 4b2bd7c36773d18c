"""A damaged checkpoint is one error line for `evaluate`, `judge` and `serve`; --no-verify loads it anyway."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llm_core.cli import main


@pytest.fixture
def damaged(gpt2_checkpoint: Path, tmp_path: Path) -> Path:
    """A copy of the tiny checkpoint with one bit flipped inside the tensor data (still valid safetensors)."""
    target = shutil.copytree(gpt2_checkpoint, tmp_path / "damaged")
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-7] ^= 0x02
    weights.write_bytes(bytes(data))
    return target


def _one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_evaluate_verifies_unless_no_verify(damaged: Path, tmp_path: Path, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text("Every effort moves you forward, one small step at a time. " * 8)
    argv = ["evaluate", "perplexity", "--checkpoint", str(damaged), "--text", str(text), "--stride", "64"]
    assert main(argv) == 2
    assert "model.safetensors: checksum mismatch" in _one_error(capsys.readouterr().err)
    assert main([*argv, "--no-verify"]) == 0, capsys.readouterr().err
    assert "perplexity" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["serve", "judge"])
def test_serve_and_judge_refuse_a_damaged_checkpoint_in_one_line(
    command: str, damaged: Path, tmp_path: Path, free_port: int, capsys, fake_judge
) -> None:
    if command == "serve":
        argv = ["serve", str(damaged), "--port", str(free_port)]
    else:
        records = tmp_path / "r.json"
        records.write_text('[{"instruction": "Say hi", "input": "", "output": "hi"}]')
        argv = ["judge", str(records), str(damaged), "--host", fake_judge.url]
    assert main(argv) == 2
    assert "model.safetensors: checksum mismatch" in _one_error(capsys.readouterr().err)
    if command == "judge":
        assert main([*argv, "--no-verify", "--no-progress"]) == 0
        assert "scored 1/1" in capsys.readouterr().out
