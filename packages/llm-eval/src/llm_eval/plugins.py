"""llm-eval's built-in plugin: the evaluators and commands it registers.

Importing this module stays light (no torch): the evaluator modules import
torch inside their functions, and the commands import what they need when run.
"""

from __future__ import annotations

from typing import Any

from llm_core import hookimpl
from llm_core.hookspecs import Register

__all__ = ["register_commands", "register_evaluators"]


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``perplexity``, ``accuracy``, ``mmlu`` and ``judge``."""
    from llm_eval.accuracy import evaluate_accuracy
    from llm_eval.judge import evaluate_judge
    from llm_eval.mmlu import evaluate_mmlu
    from llm_eval.perplexity import evaluate_perplexity

    for name, function, description in (
        ("perplexity", evaluate_perplexity, "loss and perplexity, strided sliding window"),
        ("accuracy", evaluate_accuracy, "accuracy, per-class P/R/F1, confusion matrix"),
        ("mmlu", evaluate_mmlu, "MMLU k-shot multiple-choice accuracy (next-token logits)"),
        ("judge", evaluate_judge, "LLM-as-a-judge scores 0-100 (Ollama/OpenAI server)"),
    ):
        register(name, function, description=description)


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``evaluate``, ``judge`` and ``serve``."""
    from llm_eval import commands

    cli.command(
        "evaluate",
        cls=commands.EvaluateCommand,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(commands.evaluate_command)
    cli.command("judge")(commands.judge_command)
    cli.command("serve")(commands.serve_command)
