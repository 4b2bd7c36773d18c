"""llm-model's built-in plugin: the ``gpt2`` architecture and the model commands."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl
from llm_core.hookspecs import Register

__all__ = ["register_architectures", "register_commands"]


@hookimpl
def register_architectures(register: Register) -> None:
    """Register ``gpt2``: :class:`llm_model.GPTModel` with its presets."""
    from llm_model.gpt import GPTModel
    from llm_model.presets import PRESETS

    register(
        "gpt2",
        GPTModel,
        presets={name: dict(values) for name, values in PRESETS.items()},
        description="GPT-2 (the book's GPTModel): learned positions, pre-LayerNorm, GELU MLP",
    )


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``model-info``, ``generate``, ``import-hf`` and ``export-hf``."""
    from llm_model import commands

    cli.command("model-info")(commands.model_info_command)
    cli.command("generate")(commands.generate_command)
    cli.command("import-hf")(commands.import_hf_command)
    cli.command("export-hf")(commands.export_hf_command)
