"""llm-core's built-in plugin: the ``scratchlm plugins`` command."""

from __future__ import annotations

import typer

from llm_core.hookspecs import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    """Add ``scratchlm plugins``."""

    from llm_core.commands import plugins_command

    cli.command("plugins")(plugins_command)
