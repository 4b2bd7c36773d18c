"""Every built-in command speaks the shared CLI vocabulary (docs/cli.md, llm_core.cli_options)."""

from __future__ import annotations

import pytest
import typer

from llm_core.cli_vocabulary import iter_commands, vocabulary_problems


def test_every_command_speaks_the_shared_vocabulary() -> None:
    assert vocabulary_problems() == []


def test_the_checker_sees_every_command() -> None:
    names = {name for name, _ in iter_commands()}
    assert {"pretrain", "generate", "serve", "finetune classify", "finetune dpo", "compare"} <= names


def _old_spelling(
    base: str = typer.Option("", "--base"), as_json: bool = typer.Option(False, "--json")
) -> None:
    """A command with a visible old spelling."""


def _named_argument(
    checkpoint: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")
) -> None:
    """A model argument that does not show as MODEL."""


def _other_resume(
    resume: bool = typer.Option(False, "--resume", help="again"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """--resume with another meaning (and no --config/--set/--out)."""


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (_old_spelling, "--base is the old spelling"),
        (_named_argument, "must show as MODEL"),
        (_other_resume, "one meaning"),
        (_other_resume, "has no --config"),
    ],
)
def test_the_checker_finds_departures(command: object, problem: str) -> None:
    app = typer.Typer()
    app.command("bad")(command)
    app.command("other")(lambda: None)
    found = vocabulary_problems(["bad"], app=app)
    assert any(problem in line for line in found), found
    assert vocabulary_problems(["other"], app=app) == ["other: produces a result but has no --json"]
