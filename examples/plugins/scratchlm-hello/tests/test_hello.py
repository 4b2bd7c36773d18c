"""`scratchlm hello` exists once the plugin is installed, greets, and reports bad input in one line."""

from __future__ import annotations

import json

from llm_core.cli import main


def test_hello_greets(capsys) -> None:
    assert main(["hello", "--name", "Ada", "--times", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Hello, Ada!", "Hello, Ada!"] and "plugins loaded" in lines[2]


def test_bad_option_is_one_red_line_and_exit_2(capsys) -> None:
    assert main(["hello", "--times", "0"]) == 2
    assert "--times 0: expected a number from 1 to 10" in capsys.readouterr().err


def test_listed_by_scratchlm_plugins(capsys) -> None:
    assert main(["plugins", "--json"]) == 0
    info = next(p for p in json.loads(capsys.readouterr().out) if p["name"] == "hello")
    assert info["distribution"] == "scratchlm-hello" and info["hooks"] == ["register_commands"]


def test_hello_speaks_the_shared_cli_vocabulary(capsys) -> None:
    """The plugin opts in to the check every built-in command passes (docs/cli.md)."""
    from llm_core.cli_vocabulary import vocabulary_problems

    assert vocabulary_problems(["hello"]) == []
    assert main(["hello", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["greetings"] == ["Hello, world!"]
