"""scratchlm tokenize / prepare: output, JSON, and one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from llm_core import reset_manager
from llm_core.cli import EXIT_ERROR, main
from llm_data import load_prepared


@pytest.fixture(autouse=True)
def builtins_only(monkeypatch):
    monkeypatch.setenv("SCRATCHLM_PLUGINS", "")
    reset_manager()
    yield
    reset_manager()


def test_tokenize(capsys) -> None:
    assert main(["tokenize", "Hello, world<|endoftext|>"]) == 0
    assert capsys.readouterr().out.split() == ["15496", "11", "995", "50256"]
    assert main(["tokenize", "Hello", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "tokenizer": "gpt2",
        "text": "Hello",
        "ids": [15496],
        "n_tokens": 1,
    }


def test_tokenize_decode(capsys) -> None:
    assert main(["tokenize", "--decode", "[15496, 11, 995]"]) == 0
    assert capsys.readouterr().out == "Hello, world\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokenize", "x", "--tokenizer", "nope"], "unknown tokenizer 'nope'"),
        (["tokenize", "--decode", "12 abc"], "--decode expects integer token ids"),
        (["tokenize", "--decode", "99999"], "token id 99999 is outside"),
    ],
)
def test_tokenize_errors(capsys, args, message) -> None:
    assert main(args) == EXIT_ERROR
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_prepare_and_refuse_rerun(tmp_path, capsys) -> None:
    (tmp_path / "a.txt").write_text("Some words for the corpus. " * 50)
    out = tmp_path / "out"
    assert main(["prepare", str(tmp_path / "a.txt"), "--out", str(out), "--val-fraction", "0.1"]) == 0
    assert "train" in capsys.readouterr().out
    assert len(load_prepared(out)) + len(load_prepared(out, "val")) == 301
    assert main(["prepare", str(tmp_path / "a.txt"), "--out", str(out)]) == EXIT_ERROR
    assert "not empty" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "a.txt"), "--out", str(out), "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["val"]["tokens"] == 30
