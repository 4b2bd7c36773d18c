"""The ``scratchlm`` commands of llm-finetune: ``finetune classify|instruct|dpo``, ``classify``, ``chat``.

torch is imported inside each command so ``scratchlm --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from llm_model.commands import Dtype, Force, NoVerify

__all__ = [
    "chat_command",
    "classify_command",
    "finetune_app",
    "finetune_classify_command",
    "finetune_dpo_command",
    "finetune_instruct_command",
]

finetune_app = typer.Typer(
    help="Finetune a model: text classification, instruction following (SFT), preferences (DPO).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

# -- options shared by the three finetune commands ------------------------------------
Base = Annotated[
    str,
    typer.Option(
        "--base", help="A checkpoint directory, or a preset name (tiny, gpt2-124m…) for a random model."
    ),
]
Out = Annotated[Path, typer.Option("--out", help="Run directory: checkpoints, metrics.jsonl, final/.")]
Trainable = Annotated[str, typer.Option("--trainable", help="What trains: head, last-block, all or lora.")]
Epochs = Annotated[Optional[float], typer.Option("--epochs", help="Passes over the training split.")]
MaxSteps = Annotated[
    Optional[int], typer.Option("--max-steps", help="Optimizer steps (instead of --epochs).")
]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Examples per step.")]
WeightDecay = Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")]
Tokenizer = Annotated[
    Optional[str],
    typer.Option(
        "--tokenizer", help="Tokenizer name or BPE .json [default: the base checkpoint's, else gpt2]."
    ),
]
LoraRank = Annotated[int, typer.Option("--lora-rank", help="LoRA rank r (with --trainable lora).")]
LoraAlpha = Annotated[float, typer.Option("--lora-alpha", help="LoRA alpha (update scaled by alpha/rank).")]
LoraDropout = Annotated[float, typer.Option("--lora-dropout", help="Dropout on the LoRA input.")]
LoraTarget = Annotated[
    Optional[list[str]],
    typer.Option(
        "--lora-target",
        help="Glob (or re:REGEX) over layer names to adapt, repeatable [default: trf_blocks.*].",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the head, dropout, data split and order.")]
EvalEvery = Annotated[int, typer.Option("--eval-every", help="Steps between evaluations (0: off).")]
EvalBatches = Annotated[int, typer.Option("--eval-batches", help="Batches per evaluation and split.")]
CheckpointEvery = Annotated[
    int,
    typer.Option(
        "--checkpoint-every", help="Steps between checkpoints (0: only the last step's and final/)."
    ),
]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda, …")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the newest checkpoint in --out.")]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Start a fresh run in --out even if not empty (old checkpoints go)."),
]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
OnLong = Annotated[
    str, typer.Option("--on-long", help="Texts longer than the context: truncate (counted) or error.")
]
Template = Annotated[
    Optional[str],
    typer.Option("--template", help="Prompt template: alpaca or llama [default: the base's, else alpaca]."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print a JSON object.")]


def _lora(rank: int, alpha: float, dropout: float, targets: list[str] | None) -> Any:
    from llm_finetune.lora import LoRAConfig

    return LoRAConfig(rank=rank, alpha=alpha, dropout=dropout, targets=list(targets or ["trf_blocks.*"]))


@finetune_app.command("classify")
def finetune_classify_command(
    base: Base,
    data: Annotated[
        str,
        typer.Option(
            "--data", help="sms-spam (a registered dataset) or a file: label<TAB>text, .json, .jsonl."
        ),
    ],
    out: Out,
    trainable: Trainable = "last-block",
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = 8,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 5e-5,
    weight_decay: WeightDecay = 0.1,
    tokenizer: Tokenizer = None,
    labels: Annotated[
        Optional[str], typer.Option("--labels", help="Comma list fixing the label names and order: ham,spam.")
    ] = None,
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Local directory of a registered dataset's files.")
    ] = None,
    balance: Annotated[
        bool, typer.Option("--balance/--no-balance", help="Undersample classes to the smallest (the book).")
    ] = True,
    max_length: Annotated[
        Optional[int], typer.Option("--max-length", help="Tokens per text [default: the model's context].")
    ] = None,
    on_long: OnLong = "truncate",
    lora_rank: LoraRank = 8,
    lora_alpha: LoraAlpha = 16.0,
    lora_dropout: LoraDropout = 0.0,
    lora_target: LoraTarget = None,
    seed: Seed = 123,
    eval_every: EvalEvery = 50,
    eval_batches: EvalBatches = 5,
    checkpoint_every: CheckpointEvery = 100,
    device: Device = "cpu",
    resume: Resume = False,
    overwrite: Overwrite = False,
    no_verify: NoVerify = False,
    progress: Progress = True,
    as_json: AsJson = False,
) -> None:
    """Finetune a model as a text classifier (the book's chapter 6: spam or not); 5 epochs by default."""
    from llm_finetune.classifier import finetune_classifier
    from llm_model.checkpoint import checksum_verification

    echo = _echo(as_json)
    with checksum_verification(not no_verify):  # the base checkpoint
        run = finetune_classifier(
            base,
            data,
            out,
            trainable=trainable,
            epochs=epochs if epochs is not None or max_steps is not None else 5,
            max_steps=max_steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            tokenizer=tokenizer,
            labels=[s.strip() for s in labels.split(",")] if labels else None,
            data_root=data_dir,
            balance=balance,
            max_length=max_length,
            on_long=on_long,
            lora=_lora(lora_rank, lora_alpha, lora_dropout, lora_target),
            seed=seed,
            eval_every=eval_every,
            eval_batches=eval_batches,
            checkpoint_every=checkpoint_every,
            progress=progress and not as_json,
            device=device,
            resume=resume,
            overwrite=overwrite,
            echo=echo,
        )
    if as_json:
        record = {
            "run_dir": str(run.run_dir),
            "final_dir": str(run.final_dir),
            "labels": run.labels,
            "steps": run.steps,
            "seconds": run.seconds,
            "trainable_parameters": run.trainable_parameters,
            "truncated": run.truncated,
            **{f"{split}_accuracy": r["accuracy"] for split, r in run.reports.items()},
            "reports": run.reports,
        }
        typer.echo(json.dumps(record, indent=2))
        return
    for split, report in run.reports.items():
        typer.echo(f"{split} accuracy: {report['accuracy'] * 100:.2f}% ({report['examples']} examples)")
    if "test" in run.reports:
        matrix = run.reports["test"]["confusion_matrix"]
        typer.echo("test confusion matrix (rows: true, columns: predicted): " + ", ".join(run.labels))
        for name, row in zip(run.labels, matrix, strict=True):
            typer.echo(f"  {name:>10}: {row}")
    typer.echo(f"classifier: {run.final_dir}")
    typer.echo(f'try: scratchlm classify {run.final_dir} "You won a prize! Call now"')


@finetune_app.command("instruct")
def finetune_instruct_command(
    base: Base,
    data: Annotated[
        str,
        typer.Option(
            "--data", help="instructions (registered) or a JSON list of {instruction, input, output}."
        ),
    ],
    out: Out,
    template: Template = None,
    trainable: Trainable = "all",
    mask_prompt: Annotated[
        bool, typer.Option("--mask-prompt/--no-mask-prompt", help="Leave prompt tokens out of the loss.")
    ] = False,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = 8,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 5e-5,
    weight_decay: WeightDecay = 0.1,
    tokenizer: Tokenizer = None,
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Local directory of a registered dataset's files.")
    ] = None,
    on_long: OnLong = "truncate",
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Longest generated test response.")
    ] = 256,
    test_limit: Annotated[
        Optional[int], typer.Option("--test-limit", help="Generate for the first N test records (0: none).")
    ] = None,
    lora_rank: LoraRank = 8,
    lora_alpha: LoraAlpha = 16.0,
    lora_dropout: LoraDropout = 0.0,
    lora_target: LoraTarget = None,
    seed: Seed = 123,
    eval_every: EvalEvery = 50,
    eval_batches: EvalBatches = 5,
    checkpoint_every: CheckpointEvery = 100,
    device: Device = "cpu",
    resume: Resume = False,
    overwrite: Overwrite = False,
    no_verify: NoVerify = False,
    progress: Progress = True,
) -> None:
    """Instruction-finetune a model (the book's chapter 7; 2 epochs by default) and answer the test split."""
    from llm_finetune.instruct import finetune_instructions
    from llm_model.checkpoint import checksum_verification

    with checksum_verification(not no_verify):  # the base checkpoint
        run = finetune_instructions(
            base,
            data,
            out,
            template=template,
            trainable=trainable,
            mask_prompt=mask_prompt,
            epochs=epochs if epochs is not None or max_steps is not None else 2,
            max_steps=max_steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            tokenizer=tokenizer,
            data_root=data_dir,
            on_long=on_long,
            lora=_lora(lora_rank, lora_alpha, lora_dropout, lora_target),
            max_new_tokens=max_new_tokens,
            test_limit=test_limit,
            seed=seed,
            eval_every=eval_every,
            eval_batches=eval_batches,
            checkpoint_every=checkpoint_every,
            progress=progress,
            device=device,
            resume=resume,
            overwrite=overwrite,
            echo=typer.echo,
        )
    val = "n/a" if run.val_loss is None else f"{run.val_loss:.4f}"
    typer.echo(f"done: {run.steps} steps, val loss {val}")
    if run.responses_file:
        typer.echo(f"test responses: {run.responses_file}")
    typer.echo(f"model: {run.final_dir}")
    typer.echo(f"try: scratchlm chat {run.final_dir}")


@finetune_app.command("dpo")
def finetune_dpo_command(
    base: Base,
    data: Annotated[
        str, typer.Option("--data", help="A JSON list of {instruction, input, chosen, rejected} records.")
    ],
    out: Out,
    beta: Annotated[float, typer.Option("--beta", help="DPO temperature: how far from the reference.")] = 0.1,
    template: Template = None,
    trainable: Trainable = "all",
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = 8,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 5e-6,
    weight_decay: WeightDecay = 0.01,
    tokenizer: Tokenizer = None,
    lora_rank: LoraRank = 8,
    lora_alpha: LoraAlpha = 16.0,
    lora_dropout: LoraDropout = 0.0,
    lora_target: LoraTarget = None,
    seed: Seed = 123,
    eval_every: EvalEvery = 5,
    eval_batches: EvalBatches = 5,
    checkpoint_every: CheckpointEvery = 100,
    device: Device = "cpu",
    resume: Resume = False,
    overwrite: Overwrite = False,
    no_verify: NoVerify = False,
    progress: Progress = True,
) -> None:
    """Preference-tune a model with DPO against a frozen copy of itself (chapter 7 bonus; 1 epoch)."""
    from llm_finetune.dpo import finetune_dpo
    from llm_model.checkpoint import checksum_verification

    with checksum_verification(not no_verify):  # the base checkpoint
        run = finetune_dpo(
            base,
            data,
            out,
            template=template,
            beta=beta,
            trainable=trainable,
            epochs=epochs if epochs is not None or max_steps is not None else 1,
            max_steps=max_steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            tokenizer=tokenizer,
            lora=_lora(lora_rank, lora_alpha, lora_dropout, lora_target),
            seed=seed,
            eval_every=eval_every,
            eval_batches=eval_batches,
            checkpoint_every=checkpoint_every,
            progress=progress,
            device=device,
            resume=resume,
            overwrite=overwrite,
            echo=typer.echo,
        )
    if run.initial_margin is not None and run.final_margin is not None:
        typer.echo(f"val reward margin: {run.initial_margin:.4f} -> {run.final_margin:.4f}")
    typer.echo(f"done: {run.steps} steps; model: {run.final_dir}")


def _echo(quiet: bool) -> Any:
    return (lambda text: typer.echo(text, err=True)) if quiet else typer.echo


def _load_with_tokenizer(checkpoint: Path, tokenizer: str | None, device: str = "cpu") -> tuple[Any, Any]:
    from llm_data import get_tokenizer
    from llm_finetune.checkpoints import DEFAULT_TOKENIZER, load_finetuned

    model = load_finetuned(checkpoint, map_location=device)
    name = tokenizer or getattr(model, "checkpoint_config", {}).get("tokenizer") or DEFAULT_TOKENIZER
    return model, get_tokenizer(name)


def classify_command(
    checkpoint: Annotated[Path, typer.Argument(help="A classifier made by `scratchlm finetune classify`.")],
    texts: Annotated[list[str], typer.Argument(help="Text(s) to classify.")],
    tokenizer: Tokenizer = None,
    as_json: AsJson = False,
    no_verify: NoVerify = False,
) -> None:
    """Classify TEXT(s) with a finetuned classifier: the label and its probability."""
    from llm_finetune.classifier import classify_texts
    from llm_model.checkpoint import checksum_verification

    with checksum_verification(not no_verify):
        model, tok = _load_with_tokenizer(checkpoint, tokenizer)
    results = classify_texts(model, tok, texts)
    if as_json:
        records = [{"text": t, **r} for t, r in zip(texts, results, strict=True)]
        typer.echo(json.dumps(records[0] if len(records) == 1 else records, indent=2))
        return
    for text, result in zip(texts, results, strict=True):
        shown = text if len(text) <= 60 else text[:57] + "..."
        typer.echo(f"{result['label']}\t{result['probability']:.4f}\t{shown}")


def chat_command(
    checkpoint: Annotated[Path, typer.Argument(help="An instruction-finetuned checkpoint.")],
    template: Annotated[
        Optional[str],
        typer.Option(
            "--template",
            help="alpaca or llama [default: the checkpoint's: its finetuning template, or the chat "
            "template of its own tokenizer, else alpaca].",
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest answer.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 0.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Sample among the k likeliest.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for sampling.")] = None,
    tokenizer: Tokenizer = None,
    device: Device = "cpu",
    no_verify: NoVerify = False,
    dtype: Dtype = "auto",
    force: Force = False,
) -> None:
    """Chat with an instruction-finetuned model: one instruction per line, Ctrl-D to quit."""
    from llm_finetune.chat import chat_loop
    from llm_finetune.templates import CheckpointChatTemplate, PromptTemplate, get_template
    from llm_model.checkpoint import checksum_verification
    from llm_model.loading import load_options

    with checksum_verification(not no_verify), load_options(dtype=dtype, force=force):
        model, tok = _load_with_tokenizer(checkpoint, tokenizer, device)
    info = getattr(model, "finetune", {}) or {}
    if info.get("num_classes"):
        from llm_core.errors import ConfigError

        raise ConfigError(
            f"{checkpoint}: expected a language model, found a classifier; use `scratchlm classify`"
        )
    chosen: PromptTemplate
    if template is None and not info.get("template") and getattr(tok, "chat_template", None) is not None:
        chosen = CheckpointChatTemplate(tokenizer=tok)
    else:
        chosen = get_template(template or info.get("template") or "alpaca")
    interactive = sys.stdin.isatty()

    def write(text: str) -> None:
        typer.echo(text, nl=False)
        sys.stdout.flush()

    if interactive:
        typer.echo(f"chatting with {checkpoint} (template {chosen.name}); Ctrl-D to quit", err=True)
    chat_loop(
        model,
        tok,
        chosen,
        sys.stdin,
        write,
        prompt="> " if interactive else "",
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
    )
