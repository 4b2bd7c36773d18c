"""llm-train's built-in plugin: optimizers, schedules, callbacks and the training commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from llm_core import hookimpl

__all__ = ["register_callbacks", "register_commands", "register_optimizers", "register_schedulers"]


@hookimpl
def register_optimizers(register: Any) -> None:
    """``adamw``, ``adam``, ``sgd``."""
    from llm_train import optimizers

    register("adamw", optimizers.adamw, description="AdamW, decoupled weight decay (the default)")
    register("adam", optimizers.adam, description="Adam, L2 weight decay")
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

    @cli.command("pretrain")
    def pretrain_command(
        data: Optional[str] = typer.Option(
            None, "--data", help="A directory made by `scratchlm prepare`, or a UTF-8 .txt file."
        ),
        out: Path = typer.Option(
            ..., "--out", help="Run directory: checkpoints, metrics.jsonl, final/ weights."
        ),
        arch: Optional[str] = typer.Option(
            None, "--arch", help="Registered architecture name [default: gpt2]."
        ),
        tokenizer: Optional[str] = typer.Option(
            None, "--tokenizer", help="Registered tokenizer name or a BPE .json file [default: gpt2]."
        ),
        preset: Optional[str] = typer.Option(
            None, "--preset", help="Model preset, e.g. tiny, small, gpt2-124m [default: tiny]."
        ),
        config: Optional[Path] = typer.Option(
            None, "--config", help="A TOML/JSON file with any TrainConfig fields."
        ),
        max_steps: Optional[int] = typer.Option(
            None, "--max-steps", help="Optimizer steps to run (excludes --epochs)."
        ),
        epochs: Optional[float] = typer.Option(
            None, "--epochs", help="Passes over the training tokens (excludes --max-steps)."
        ),
        batch_size: Optional[int] = typer.Option(
            None, "--batch-size", help="Sequences per step and process [default: 8]."
        ),
        context_length: Optional[int] = typer.Option(
            None, "--context-length", help="Window length, >= 1 [default: the model's]."
        ),
        lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate [default: 4e-4]."),
        optimizer: Optional[str] = typer.Option(
            None, "--optimizer", help="adamw, adam, sgd or a plugin's [default: adamw]."
        ),
        scheduler: Optional[str] = typer.Option(
            None, "--scheduler", help="constant, warmup-cosine, wsd or a plugin's."
        ),
        seed: Optional[int] = typer.Option(
            None, "--seed", help="Seed of the initialisation, dropout and data order [default: 123]."
        ),
        checkpoint_every: Optional[int] = typer.Option(
            None,
            "--checkpoint-every",
            help="Steps between checkpoints; 0: none but the last step's and final/ [default: 100].",
        ),
        precision: Optional[str] = typer.Option(None, "--precision", help="fp32 or bf16 (autocast)."),
        compile_model: Optional[bool] = typer.Option(
            None, "--compile/--no-compile", help="Use torch.compile."
        ),
        parallel: Optional[str] = typer.Option(
            None,
            "--parallel",
            help="Under torchrun: ddp (a model copy per process) or fsdp (sharded) [default: ddp].",
        ),
        resume: bool = typer.Option(False, "--resume", help="Continue the newest checkpoint in --out."),
        overwrite: bool = typer.Option(
            False,
            "--overwrite",
            help="Start a fresh run in --out even if it is not empty (a previous run's checkpoints go).",
        ),
        force: bool = typer.Option(
            False, "--force", help="Train even when the model looks larger than the memory available."
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Override any config field: --set eval_every=20 (repeatable)."
        ),
    ) -> None:
        """Pretrain a GPT-style model; final weights go to OUT/final/model.safetensors."""
        from llm_core.cli_options import parse_overrides
        from llm_train.config import load_train_config
        from llm_train.pretrain import pretrain

        named = dict(
            data=data,
            arch=arch,
            preset=preset,
            tokenizer=tokenizer,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            context_length=context_length,
            lr=lr,
            optimizer=optimizer,
            scheduler=scheduler,
            seed=seed,
            checkpoint_every=checkpoint_every,
            precision=precision,
            compile=compile_model,
            parallel=parallel,
        )
        # named options win over --set, which wins over the file
        cfg = load_train_config(config, sets=parse_overrides(set_), **named)
        result = pretrain(cfg, out, resume=resume, overwrite=overwrite, force=force)
        if not result.is_main:  # a torchrun job: rank 0 reports for all
            return
        val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
        typer.echo(f"done: {result.steps} steps, {result.tokens_seen} tokens, val loss {val}")
        typer.echo(f"final weights: {result.final_dir / 'model.safetensors'}")

    @cli.command("compare")
    def compare_command(
        sweep: Path = typer.Argument(..., help="A TOML sweep: a [base] table and [[variant]] tables."),
        out: Path = typer.Option(..., "--out", help="Where the runs, compare.md/.json and the plot go."),
        processes: bool = typer.Option(
            False, "--processes", help="Train each variant in its own process (per-variant peak RSS)."
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Write into --out even if it is not empty and not a compare's."
        ),
    ) -> None:
        """Train the variants of a sweep on the same data, budget and seed; tabulate and plot them."""
        from llm_train.compare import compare

        result = compare(sweep, out, processes=processes, overwrite=overwrite, echo=typer.echo)
        typer.echo(result.table.read_text(encoding="utf-8"))
        typer.echo(f"table: {result.table}")
        typer.echo(f"json:  {result.json}")
        if result.plot is not None:
            typer.echo(f"plot:  {result.plot}")

    @cli.command("plot")
    def plot_command(
        run_dirs: list[Path] = typer.Argument(..., help="One or more run directories (overlaid)."),
        out: Optional[Path] = typer.Option(None, "--out", help="PNG path [default: RUN_DIR/loss.png]."),
    ) -> None:
        """Draw training and validation loss against epochs and tokens seen (the book's figure)."""
        from llm_train.plots import plot_runs

        path = plot_runs(run_dirs, out or run_dirs[0] / "loss.png")
        typer.echo(str(path))

    @cli.command("demo")
    def demo_command(
        out: Optional[Path] = typer.Option(
            None, "--out", help="Where to put everything [default: runs/demo-<time>]."
        ),
        max_steps: int = typer.Option(
            400, "--max-steps", help="Training steps (about 3 minutes on 2 idle CPU cores)."
        ),
        seed: int = typer.Option(123, "--seed", help="Seed of the whole run."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Write into --out even if it is not empty and not a demo's."
        ),
    ) -> None:
        """Pretrain a small GPT on Python's own documentation (offline) and show text before and after."""
        import time

        from llm_train.demo import run_demo

        target = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
        run_demo(target, max_steps=max_steps, seed=seed, overwrite=overwrite, echo=typer.echo)
