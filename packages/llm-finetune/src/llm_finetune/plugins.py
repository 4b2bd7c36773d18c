"""llm-finetune's built-in plugin: the ``finetune`` command group, ``classify`` and ``chat``."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: Any) -> None:
    """``finetune classify|instruct|dpo``, ``classify`` and ``chat``."""
    from llm_finetune.commands import chat_command, classify_command, finetune_app

    cli.add_typer(finetune_app, name="finetune")
    cli.command("classify")(classify_command)
    cli.command("chat")(chat_command)
