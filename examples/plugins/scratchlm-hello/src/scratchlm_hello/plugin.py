"""The scratchlm hooks of scratchlm-hello: one command, ``scratchlm hello``."""

from __future__ import annotations

from typing import Any

import typer

from llm_core import ConfigError, hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``scratchlm hello``."""

    @cli.command("hello")
    def hello_command(
        name: str = typer.Option("world", "--name", help="Who to greet."),
        times: int = typer.Option(1, "--times", help="How many greetings (1-10)."),
    ) -> None:
        """Greet someone, and say how many plugins scratchlm loaded."""
        from llm_core import get_manager

        if not 1 <= times <= 10:
            raise ConfigError(f"--times {times}: expected a number from 1 to 10")
        for _ in range(times):
            typer.echo(f"Hello, {name}!")
        typer.echo(f"({len(get_manager().plugins())} scratchlm plugins loaded)")
