"""`scratchlm pretrain` options that make no sense are one error line (exit 2); 0 means what --help says."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_core.cli import main


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text("hello world, a small text to train on. " * 200, encoding="utf-8")
    return path


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--context-length", "0"], "context_length=0 must be >= 1"),
        (["--context-length", "-3"], "context_length=-3 must be >= 1"),
        (["--checkpoint-every", "-1"], "checkpoint_every=-1 must be >= 0 (0 turns it off)"),
    ],
)
def test_nonsense_options_are_one_line_and_exit_2(
    tmp_path: Path, text: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["pretrain", "--data", str(text), "--out", str(tmp_path / "r"), "--max-steps", "1", *extra])
    errors = _error_lines(capsys.readouterr().err)
    assert code == 2
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "r").exists()


def test_checkpoint_every_0_keeps_only_the_last_step_and_final(
    tmp_path: Path, text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    args = ["pretrain", "--data", str(text), "--out", str(out), "--max-steps", "3", "--batch-size", "2"]
    args += ["--context-length", "16", "--checkpoint-every", "0", "--set", "progress=false"]
    assert main(args) == 0
    assert sorted(p.name for p in out.glob("step-*")) == ["step-0000003"]
    assert (out / "final" / "model.safetensors").is_file()
    assert main(["pretrain", "--help"]) == 0
    assert "0: none but the last step's and final/" in " ".join(capsys.readouterr().out.split())
