"""`scratchlm pretrain` and `scratchlm plot` end to end on the book's text."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
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


def test_pretrain_never_writes_into_a_users_directory(tmp_path: Path, capsys) -> None:
    """The issue's reproduction: a directory of the user's own is refused in one line, untouched."""
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    user = tmp_path / "u"
    (user / "best").mkdir(parents=True)
    (user / "metrics.jsonl").write_text("mine\n")
    (user / "best" / "keep.txt").write_text("keep\n")
    args = ["pretrain", "--data", str(text), "--max-steps", "2", "--batch-size", "2", "--out", str(user)]
    code = main([*args, "--set", "progress=false"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"--out {user}: not empty (best/, metrics.jsonl) and not written by scratchlm" in err
    assert "pass --overwrite" in err
    assert (user / "metrics.jsonl").read_text() == "mine\n"
    assert (user / "best" / "keep.txt").read_text() == "keep\n"
    assert sorted(p.name for p in user.iterdir()) == ["best", "metrics.jsonl"]  # nothing written
    assert main([*args, "--set", "progress=false", "--overwrite"]) == 0  # the user's choice
    assert (user / "final" / "model.safetensors").is_file()
    assert main([*args, "--set", "progress=false", "--max-steps", "3", "--resume"]) == 0  # a run now


def test_demo_never_writes_into_a_users_directory(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), "--max-steps", "1"]) == 2
    assert "not empty (notes.txt) and not written by scratchlm" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


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
    # Every printed next step runs as printed (the long pretraining with 2 steps, into tmp_path).
    steps = out.split("Next:\n", 1)[1].replace("\\\n", " ").strip().splitlines()
    assert len(steps) == 3
    for step in steps:
        argv = shlex.split(step)
        assert Path(argv[0]).name == "scratchlm"
        if argv[1] == "pretrain":
            argv[argv.index("--max-steps") + 1] = "2"
            argv[argv.index("--out") + 1] = str(tmp_path / "longer")
        assert main(argv[1:]) == 0, step


def test_the_demos_next_steps_name_a_scratchlm_that_runs(monkeypatch, tmp_path: Path) -> None:
    """On PATH: the bare name; not on PATH (after `nox -s demo`): this environment's full path."""
    from llm_train.demo import scratchlm_command

    monkeypatch.setenv("PATH", str(tmp_path))
    command = scratchlm_command()
    assert command == str(Path(sys.executable).with_name("scratchlm"))
    assert subprocess.run([command, "--version"], capture_output=True, timeout=120).returncode == 0
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert scratchlm_command() == "scratchlm"


def test_pretrain_reads_a_toml_config_and_named_options_win(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 100)
    config = tmp_path / "run.toml"
    config.write_text(
        f'data = "{text}"\npreset = "tiny"\nbatch_size = 2\ncontext_length = 16\nmax_steps = 50\n'
        "lr = 1e-3\nprogress = false\nbetas = [0.9, 0.99]\n[model]\nn_layers = 1\n"
    )
    out = tmp_path / "run"
    assert main(["pretrain", "--config", str(config), "--max-steps", "2", "--out", str(out)]) == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["max_steps"] == 2 and saved["lr"] == 1e-3 and saved["betas"] == [0.9, 0.99]
    assert json.loads((out / "final" / "config.json").read_text())["n_layers"] == 1


def test_tensorboard_callback_without_tensorboard_is_a_clear_error(tmp_path: Path, capsys) -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    args = ["pretrain", "--data", str(text), "--out", str(tmp_path / "r"), "--max-steps", "1"]
    assert main([*args, "--set", 'callbacks=["tensorboard"]']) == 2
    assert "pip install tensorboard" in capsys.readouterr().err
