"""llm-train's built-in plugin: optimizers, schedules, callbacks and the training commands."""

from __future__ import annotations

from typing import Any

import typer

from llm_core import hookimpl

__all__ = ["register_callbacks", "register_commands", "register_optimizers", "register_schedulers"]


@hookimpl
def register_optimizers(register: Any) -> None:
    """``adamw``, ``adam``, ``sgd``."""
    from llm_train import optimizers

    register(
        "adamw",
        optimizers.adamw,
        description="AdamW, decoupled weight decay (the default); betas 0.9,0.95 (torch's: 0.9,0.999)",
    )
    register("adam", optimizers.adam, description="Adam, L2 weight decay; betas 0.9,0.999")
    register("sgd", optimizers.sgd, description="SGD with momentum 0.9")


@hookimpl
def register_schedulers(register: Any) -> None:
    """``constant``, ``warmup-cosine`` (alias ``linear-warmup+cosine``), ``wsd``."""
    from llm_train import schedules

    register("constant", schedules.constant, description="constant, optional linear warmup")
    register(
        "warmup-cosine", schedules.warmup_cosine, description="linear warmup + cosine decay (appendix D)"
    )
    register("linear-warmup+cosine", schedules.warmup_cosine, description="alias of warmup-cosine")
    register("wsd", schedules.wsd, description="warmup, stable, linear decay")


@hookimpl
def register_callbacks(register: Any) -> None:
    """``tensorboard`` (needs the tensorboard package)."""
    from llm_train.callbacks import TensorBoardCallback

    register("tensorboard", TensorBoardCallback, description="log metrics to RUN_DIR/tensorboard")


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    """``pretrain``, ``compare``, ``plot`` and ``demo``."""
    from llm_train import commands

    cli.command("pretrain")(commands.pretrain_command)
    cli.command("compare")(commands.compare_command)
    cli.command("plot")(commands.plot_command)
    cli.command("demo")(commands.demo_command)
