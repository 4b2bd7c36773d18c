"""The ``scratchlm`` commands of llm-train: ``pretrain``, ``compare``, ``plot`` and ``demo``.

Each is a plain function registered by :func:`llm_train.plugins.register_commands`;
torch is imported inside each command so ``scratchlm --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from llm_core.cli_options import (
    AsJson,
    ConfigFile,
    Overwrite,
    Resume,
    SetOverrides,
    echo_json,
    parse_overrides,
)

__all__ = ["compare_command", "demo_command", "plot_command", "pretrain_command"]


def pretrain_command(
    out: Annotated[
        Path, typer.Option("--out", help="Run directory: checkpoints, metrics.jsonl, final/ weights.")
    ],
    data: Annotated[
        Optional[str],
        typer.Option("--data", help="A directory made by `scratchlm prepare`, or a UTF-8 .txt file."),
    ] = None,
    init: Annotated[
        Optional[str],
        typer.Option(
            "--init",
            metavar="MODEL",
            help="Continue pretraining from these weights: a scratchlm checkpoint directory or a "
            "Hugging Face directory import-hf reads. The model's architecture, config and tokenizer "
            "come from MODEL (not --arch/--preset/--tokenizer).",
        ),
    ] = None,
    arch: Annotated[
        Optional[str], typer.Option("--arch", help="Registered architecture name [default: gpt2].")
    ] = None,
    tokenizer: Annotated[
        Optional[str],
        typer.Option("--tokenizer", help="Registered tokenizer name or a BPE .json file [default: gpt2]."),
    ] = None,
    preset: Annotated[
        Optional[str],
        typer.Option("--preset", help="Model preset, e.g. tiny, small, gpt2-124m [default: tiny]."),
    ] = None,
    config: ConfigFile = None,
    set_: SetOverrides = None,
    max_steps: Annotated[
        Optional[int], typer.Option("--max-steps", help="Optimizer steps to run (excludes --epochs).")
    ] = None,
    epochs: Annotated[
        Optional[float],
        typer.Option("--epochs", help="Passes over the training tokens (excludes --max-steps)."),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", help="Sequences per step and process [default: 8].")
    ] = None,
    context_length: Annotated[
        Optional[int], typer.Option("--context-length", help="Window length, >= 1 [default: the model's].")
    ] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate [default: 4e-4].")] = None,
    optimizer: Annotated[
        Optional[str],
        typer.Option(
            "--optimizer",
            help="adamw (betas 0.9,0.95, eps 1e-8; torch's AdamW uses 0.9,0.999), adam (betas "
            "0.9,0.999), sgd (momentum 0.9, no betas) or a plugin's [default: adamw]; its own options: "
            "--set optimizer_options.NAME=VALUE.",
        ),
    ] = None,
    scheduler: Annotated[
        Optional[str], typer.Option("--scheduler", help="constant, warmup-cosine, wsd or a plugin's.")
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option("--seed", help="Seed of the initialisation, dropout and data order [default: 123]."),
    ] = None,
    checkpoint_every: Annotated[
        Optional[int],
        typer.Option(
            "--checkpoint-every",
            help="Steps between checkpoints; 0: none but the last step's and final/ [default: 100].",
        ),
    ] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="fp32 or bf16 (autocast).")] = None,
    compile_model: Annotated[
        Optional[bool], typer.Option("--compile/--no-compile", help="Use torch.compile.")
    ] = None,
    parallel: Annotated[
        Optional[str],
        typer.Option(
            "--parallel",
            help="Under torchrun: ddp (a model copy per process) or fsdp (sharded) [default: ddp].",
        ),
    ] = None,
    device: Annotated[
        Optional[str], typer.Option("--device", help="Where to train: cpu, cuda, mps [default: cpu].")
    ] = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Train even when the model looks larger than the memory available."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Pretrain a GPT-style model (or continue one with --init); final weights go to OUT/final/.

    Settings come from the --config file, then --set, then the named options; the
    resolved config is saved as OUT/train_config.json.
    """
    from llm_core.errors import ConfigError
    from llm_train.config import load_train_config
    from llm_train.pretrain import pretrain

    if init is not None and (arch or preset or tokenizer):
        raise ConfigError(
            "--init takes the architecture, model config and tokenizer from MODEL; "
            "leave out --arch, --preset and --tokenizer"
        )
    named = dict(
        data=data,
        init=init,
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
        device=device,
    )
    cfg = load_train_config(config, sets=parse_overrides(set_), **named)
    result = pretrain(cfg, out, resume=resume, overwrite=overwrite, force=force)
    if not result.is_main:  # a torchrun job: rank 0 reports for all
        return
    if as_json:
        echo_json(
            {
                "out": str(out),
                "final": str(result.final_dir),
                "steps": result.steps,
                "tokens_seen": result.tokens_seen,
                "initial_val_loss": result.initial_val_loss,
                "val_loss": result.val_loss,
                "train_loss": result.train_loss,
                "seconds": result.seconds,
            }
        )
        return
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
    typer.echo(f"done: {result.steps} steps, {result.tokens_seen} tokens, val loss {val}")
    typer.echo(f"final weights: {result.final_dir / 'model.safetensors'}")


def compare_command(
    out: Annotated[Path, typer.Option("--out", help="Where the runs, compare.md/.json and the plot go.")],
    sweep: Annotated[
        Optional[Path],
        typer.Argument(help="A TOML sweep: a [base] table and [[variant]] tables.", show_default=False),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="The sweep file (instead of the SWEEP argument).")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="Override a field of the sweep's [base], KEY=VALUE (repeatable)."),
    ] = None,
    processes: Annotated[
        bool,
        typer.Option("--processes", help="Train each variant in its own process (per-variant peak RSS)."),
    ] = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Train the variants of a sweep on the same data, budget and seed; tabulate and plot them."""
    from llm_core.errors import ConfigError
    from llm_train.compare import compare, load_sweep

    if (sweep is None) == (config is None):
        raise ConfigError("give the sweep file once: as SWEEP or as --config FILE")
    path = sweep if sweep is not None else config
    assert path is not None
    loaded = load_sweep(path, sets=parse_overrides(set_))
    echo = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    result = compare(loaded, out, processes=processes, overwrite=overwrite, echo=echo)
    if as_json:
        plot = None if result.plot is None else str(result.plot)
        echo_json({"out": str(result.out_dir), "rows": result.rows, "table": str(result.table), "plot": plot})
        return
    typer.echo(result.table.read_text(encoding="utf-8"))
    typer.echo(f"table: {result.table}")
    typer.echo(f"json:  {result.json}")
    if result.plot is not None:
        typer.echo(f"plot:  {result.plot}")


def plot_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories (overlaid).")],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="PNG path [default: RUN_DIR/loss.png].")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Draw training and validation loss against epochs and tokens seen (the book's figure)."""
    from llm_train.plots import plot_runs

    path = plot_runs(run_dirs, out or run_dirs[0] / "loss.png")
    if as_json:
        echo_json({"runs": [str(run) for run in run_dirs], "plot": str(path)})
        return
    typer.echo(str(path))


def demo_command(
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Where to put everything [default: runs/demo-<time>].")
    ] = None,
    max_steps: Annotated[
        int, typer.Option("--max-steps", help="Training steps (about 3 minutes on 2 idle CPU cores).")
    ] = 400,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the whole run.")] = 123,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Pretrain a small GPT on Python's own documentation (offline) and show text before and after."""
    from llm_train.demo import run_demo

    target = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    echo = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    result = run_demo(target, max_steps=max_steps, seed=seed, overwrite=overwrite, echo=echo)
    if as_json:
        echo_json(
            {
                "out": str(result.out_dir),
                "before": result.before,
                "after": result.after,
                "initial_val_loss": result.initial_val_loss,
                "val_loss": result.val_loss,
                "plot": None if result.plot is None else str(result.plot),
                "seconds": result.seconds,
            }
        )
