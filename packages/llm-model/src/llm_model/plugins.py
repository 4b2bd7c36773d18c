"""llm-model's built-in plugin: the gpt2, llama, mistral and phi architectures and the model commands."""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl
from llm_core.hookspecs import Register

__all__ = ["register_architectures", "register_commands"]


@hookimpl
def register_architectures(register: Register) -> None:
    """Register ``gpt2``, ``llama``, ``mistral`` and ``phi`` with their presets."""
    from llm_model.gpt import GPTModel
    from llm_model.llama import LlamaModel, MistralModel
    from llm_model.phi import PhiModel
    from llm_model.presets import LLAMA_PRESETS, MISTRAL_PRESETS, PHI_PRESETS, PRESETS

    register(
        "gpt2",
        GPTModel,
        presets={name: dict(values) for name, values in PRESETS.items()},
        description="GPT-2 (the book's GPTModel): learned positions, pre-LayerNorm, GELU MLP",
    )
    register(
        "llama",
        LlamaModel,
        presets={name: dict(values) for name, values in LLAMA_PRESETS.items()},
        description="Llama 2/3: RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases",
    )
    register(
        "mistral",
        MistralModel,
        presets={name: dict(values) for name, values in MISTRAL_PRESETS.items()},
        description="Mistral: Llama with sliding-window attention",
    )
    register(
        "phi",
        PhiModel,
        presets={name: dict(values) for name, values in PHI_PRESETS.items()},
        description="Phi-1/1.5/2: parallel attention + MLP on one LayerNorm, partial RoPE, biases",
    )


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``model-info``, ``generate``, ``import-hf``, ``import-book`` and ``export-hf``."""
    from llm_model import commands

    cli.command("model-info")(commands.model_info_command)
    cli.command("generate")(commands.generate_command)
    cli.command("import-hf")(commands.import_hf_command)
    cli.command("import-book")(commands.import_book_command)
    cli.command("export-hf")(commands.export_hf_command)
