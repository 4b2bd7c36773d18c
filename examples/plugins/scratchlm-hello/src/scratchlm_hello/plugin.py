"""The scratchlm hooks of scratchlm-hello: one command, ``scratchlm hello``.

A command is a plain function (here :func:`hello_command`), registered in the
``register_commands`` hook with ``cli.command(NAME)(function)``: the one way
every scratchlm package registers its commands.
"""

from __future__ import annotations

from typing import Any

import typer

from llm_core import ConfigError, hookimpl
from llm_core.cli_options import AsJson, echo_json

__all__ = ["hello_command", "register_commands"]


def hello_command(
    name: str = typer.Option("world", "--name", help="Who to greet."),
    times: int = typer.Option(1, "--times", help="How many greetings (1-10)."),
    as_json: AsJson = False,
) -> None:
    """Greet someone, and say how many plugins scratchlm loaded."""
    from llm_core import get_manager

    if not 1 <= times <= 10:
        raise ConfigError(f"--times {times}: expected a number from 1 to 10")
    plugins = len(get_manager().plugins())
    if as_json:
        echo_json({"greetings": [f"Hello, {name}!"] * times, "plugins": plugins})
        return
    for _ in range(times):
        typer.echo(f"Hello, {name}!")
    typer.echo(f"({plugins} scratchlm plugins loaded)")


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``scratchlm hello``."""
    cli.command("hello")(hello_command)
