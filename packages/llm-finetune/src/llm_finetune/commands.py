"""The ``scratchlm`` commands of llm-finetune: ``finetune classify|instruct|dpo``, ``classify``, ``chat``.

The three ``finetune`` commands share one body and one table of options
(:data:`OPTIONS`): each option is written once, defaults to "not given", and fills
the config field of the same name (:mod:`llm_finetune.config`), whose default is
shown in ``--help``. Settings come from ``--config FILE``, then ``--set KEY=VALUE``,
then the named options; a config file may name the base (``model``), the data and
the run directory (``out``), so ``scratchlm finetune instruct --config my.toml``
is a whole command. torch is imported inside each command so ``scratchlm --help``
stays fast.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from llm_core.cli_options import (
    AsJson,
    ConfigFile,
    Device,
    Dtype,
    Force,
    MaxNewTokens,
    ModelArg,
    NoVerify,
    Overwrite,
    Progress,
    Quantize,
    Resume,
    Seed,
    SetOverrides,
    deprecated,
    echo_json,
    parse_overrides,
)
from llm_finetune.config import ClassifyConfig, DPOConfig, FinetuneConfig, InstructConfig

__all__ = [
    "OPTIONS",
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


def _given(option: Any, help: str | None = None) -> Any:
    """A shared option of :mod:`llm_core.cli_options` whose value is None when it is not given."""
    info = copy.copy(option.__metadata__[0])
    if help is not None:
        info.help = help
    return Annotated[Optional[option.__origin__], info]


def _option(flag: str, help: str, kind: Any = str) -> Any:
    return Annotated[Optional[kind], typer.Option(flag, help=help)]


#: Every option of the finetune commands, by parameter name; each fills the config field of
#: its name (``lora_*``: the ``lora`` table), except the run's own flags (:data:`_RUN_FLAGS`).
OPTIONS: dict[str, Any] = {
    "model": Annotated[
        Optional[str],
        typer.Argument(
            metavar="MODEL",
            help="The base: a checkpoint directory, or a preset name (tiny, gpt2-124m…) for a random "
            "model [or `model` in --config].",
            show_default=False,
        ),
    ],
    "out": _option(
        "--out", "Run directory: checkpoints, metrics.jsonl, final/ [or `out` in --config].", Path
    ),
    "config": ConfigFile,
    "set_": SetOverrides,
    "trainable": _option("--trainable", "What trains: head, last-block, all or lora."),
    "epochs": _option("--epochs", "Passes over the training split.", float),
    "max_steps": _option("--max-steps", "Optimizer steps (instead of --epochs).", int),
    "batch_size": _option("--batch-size", "Examples per step.", int),
    "lr": _option("--lr", "Learning rate.", float),
    "weight_decay": _option("--weight-decay", "AdamW weight decay.", float),
    "tokenizer": _option(
        "--tokenizer", "Tokenizer name or BPE .json [default: the base checkpoint's, else gpt2]."
    ),
    "lora_rank": _option("--lora-rank", "LoRA rank r (with --trainable lora).", int),
    "lora_alpha": _option("--lora-alpha", "LoRA alpha (the update is scaled by alpha/rank).", float),
    "lora_dropout": _option("--lora-dropout", "Dropout on the LoRA input.", float),
    "lora_target": _option(
        "--lora-target", "Glob (or re:REGEX) over layer names to adapt, repeatable.", list[str]
    ),
    "eval_every": _option("--eval-every", "Steps between evaluations (0: off).", int),
    "eval_batches": _option("--eval-batches", "Batches per evaluation and split.", int),
    "checkpoint_every": _option(
        "--checkpoint-every", "Steps between checkpoints (0: only the last step's and final/).", int
    ),
    "seed": _given(Seed, help="Seed of the new weights, dropout, data split and order."),
    "device": _given(Device),
    "dtype": _given(Dtype),
    "progress": _given(Progress),
    # each recipe's own
    "labels": _option("--labels", "Comma list fixing the label names and order: ham,spam."),
    "data_dir": _option("--data-dir", "Local directory of a registered dataset's files.", Path),
    "balance": _option("--balance/--no-balance", "Undersample classes to the smallest (the book).", bool),
    "max_length": _option("--max-length", "Tokens per text [default: the model's context].", int),
    "on_long": _option("--on-long", "Texts longer than the context: truncate (counted) or error."),
    "template": _option("--template", "Prompt template: alpaca or llama [default: the base's, else alpaca]."),
    "mask_prompt": _option("--mask-prompt/--no-mask-prompt", "Leave prompt tokens out of the loss.", bool),
    "max_new_tokens": _given(MaxNewTokens, help="Longest generated test response."),
    "test_limit": _option("--test-limit", "Generate for the first N test records (0: none).", int),
    "beta": _option("--beta", "DPO temperature: how far from the reference.", float),
    # the run's own flags (not config fields)
    "resume": Resume,
    "overwrite": Overwrite,
    "no_verify": NoVerify,
    "as_json": AsJson,
    "base": Annotated[
        Optional[str],
        typer.Option("--base", hidden=True, help="Deprecated spelling of the positional MODEL."),
    ],
}
_RUN_FLAGS = {"resume": False, "overwrite": False, "no_verify": False, "as_json": False}
_NOT_FIELDS = {"config", "set_", "base", *_RUN_FLAGS}
#: Options whose config field has another name.
_FIELD = {
    "lora_rank": "lora.rank",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lora_target": "lora.targets",
}
#: The options every finetune command has, after MODEL and --data: OPTIONS from --out to --progress.
_COMMON = tuple(OPTIONS)[1 : tuple(OPTIONS).index("progress") + 1]
_DATA_HELP = {
    "classify": "sms-spam (a registered dataset) or a file: label<TAB>text, .json, .jsonl.",
    "instruct": "instructions (registered) or a JSON list of {instruction, input, output}.",
    "dpo": "A JSON list of {instruction, input, chosen, rejected} records.",
}
#: kind -> (config class, "module:function" of its recipe, its own options)
_RECIPES: dict[str, tuple[type[FinetuneConfig], str, tuple[str, ...]]] = {
    "classify": (
        ClassifyConfig,
        "classifier:finetune_classifier",
        ("labels", "data_dir", "balance", "max_length", "on_long"),
    ),
    "instruct": (
        InstructConfig,
        "instruct:finetune_instructions",
        ("template", "mask_prompt", "data_dir", "on_long", "max_new_tokens", "test_limit"),
    ),
    "dpo": (DPOConfig, "dpo:finetune_dpo", ("beta", "template")),
}


def _default(cls: type[FinetuneConfig], field: str) -> Any:
    """The dataclass default of ``field`` (dotted: ``lora.rank``)."""
    owner: Any = cls
    for part in field.split("."):
        found = {f.name: f for f in dataclasses.fields(owner)}[part]
        factory = found.default_factory
        value = factory() if factory is not dataclasses.MISSING else found.default
        owner = type(value) if dataclasses.is_dataclass(value) else None
    return value


def _parameter(kind: str, name: str) -> inspect.Parameter:
    """The ``name`` option of ``finetune KIND``, its help ending with the config's default."""
    cls = _RECIPES[kind][0]
    annotation = OPTIONS[name] if name != "data" else _option("--data", _DATA_HELP[kind])
    field = _FIELD.get(name, name)
    if name not in _NOT_FIELDS and name != "model":
        default = _default(cls, field)
        info = copy.copy(annotation.__metadata__[0])
        if default not in (None, "") and "[default" not in (info.help or ""):
            shown = ",".join(default) if isinstance(default, list) else default
            info.help = f"{info.help} [default: {shown}]"
        annotation = Annotated[annotation.__origin__, info]
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(name, keyword, annotation=annotation, default=_RUN_FLAGS.get(name))


def _finetune_command(kind: str, doc: str) -> Callable[..., None]:
    """``finetune KIND``: the shared options plus the recipe's own, all run by :func:`_finetune`."""

    def command(**options: Any) -> None:
        _finetune(kind, options)

    names = ("model", "data", *_COMMON, *_RECIPES[kind][2], *_RUN_FLAGS, "base")
    params = [_parameter(kind, name) for name in names]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    command.__name__ = command.__qualname__ = f"finetune_{kind}_command"
    return command


def _value(name: str, value: Any) -> Any:
    if name == "labels":
        return [label.strip() for label in value.split(",")]
    return str(value) if isinstance(value, Path) else value


def _finetune(kind: str, options: dict[str, Any]) -> None:
    """Build the recipe's config from ``--config``, ``--set`` and the options; run it; report."""
    from llm_core.errors import ConfigError
    from llm_model.checkpoint import checksum_verification
    from llm_train.config import load_config

    cls, where, _ = _RECIPES[kind]
    if options["base"] is not None:
        deprecated("--base", "the positional MODEL")
        if options["model"] is not None:
            raise ConfigError("give the base model once: as MODEL (--base is its old spelling)")
        options["model"] = options["base"]
    as_json = options["as_json"]
    if as_json:
        options["progress"] = False  # stdout holds the one JSON document
    named = {
        _FIELD.get(k, k): _value(k, v) for k, v in options.items() if k not in _NOT_FIELDS and v is not None
    }
    config = load_config(cls, options["config"], sets=parse_overrides(options["set_"]), **named)
    module, function = where.split(":")
    finetune = getattr(importlib.import_module(f"llm_finetune.{module}"), function)
    echo = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    with checksum_verification(not options["no_verify"]):  # the base checkpoint
        run = finetune(config, resume=options["resume"], overwrite=options["overwrite"], echo=echo)
    if as_json:
        echo_json(run.summary())
        return
    for line in run.lines():
        typer.echo(line)


finetune_classify_command = _finetune_command(
    "classify", "Finetune a model as a text classifier (the book's chapter 6: spam or not)."
)
finetune_instruct_command = _finetune_command(
    "instruct", "Instruction-finetune a model (the book's chapter 7) and answer the test split."
)
finetune_dpo_command = _finetune_command(
    "dpo", "Preference-tune a model with DPO against a frozen copy of itself (chapter 7's bonus)."
)
finetune_app.command("classify")(finetune_classify_command)
finetune_app.command("instruct")(finetune_instruct_command)
finetune_app.command("dpo")(finetune_dpo_command)


def _load_with_tokenizer(
    model: Path, tokenizer: str | None, device: str, dtype: str, force: bool = False
) -> tuple[Any, Any]:
    from llm_data import get_tokenizer
    from llm_finetune.checkpoints import load_finetuned
    from llm_model.loading import load_options

    with load_options(dtype=dtype, force=force):
        loaded = load_finetuned(model, map_location=device)
    return loaded, get_tokenizer(tokenizer or loaded.tokenizer_name)


Tokenizer = Annotated[
    Optional[str],
    typer.Option("--tokenizer", help="Tokenizer name or BPE .json [default: the checkpoint's, else gpt2]."),
]


def classify_command(
    model: ModelArg,
    texts: Annotated[list[str], typer.Argument(help="Text(s) to classify.")],
    tokenizer: Tokenizer = None,
    device: Device = "cpu",
    dtype: Dtype = "auto",
    as_json: AsJson = False,
    no_verify: NoVerify = False,
) -> None:
    """Classify TEXT(s) with a classifier from `scratchlm finetune classify`: label and probability."""
    from llm_finetune.classifier import classify_texts
    from llm_model.checkpoint import checksum_verification

    with checksum_verification(not no_verify):
        loaded, tok = _load_with_tokenizer(model, tokenizer, device, dtype)
    results = classify_texts(loaded, tok, texts)
    if as_json:
        records = [{"text": t, **r} for t, r in zip(texts, results, strict=True)]
        echo_json(records[0] if len(records) == 1 else records)
        return
    for text, result in zip(texts, results, strict=True):
        shown = text if len(text) <= 60 else text[:57] + "..."
        typer.echo(f"{result['label']}\t{result['probability']:.4f}\t{shown}")


def chat_command(
    model: ModelArg,
    tokenizer: Tokenizer = None,
    device: Device = "cpu",
    dtype: Dtype = "auto",
    force: Force = False,
    no_verify: NoVerify = False,
    quantize: Quantize = "none",
    template: Annotated[
        Optional[str],
        typer.Option(
            "--template",
            help="alpaca or llama [default: the checkpoint's: its finetuning template, or the chat "
            "template of its own tokenizer, else alpaca].",
        ),
    ] = None,
    max_new_tokens: MaxNewTokens = 256,
    temperature: Annotated[float, typer.Option("--temperature", help="0 = greedy.")] = 0.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Sample among the k likeliest.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for sampling.")] = None,
) -> None:
    """Chat with an instruction-finetuned model: one instruction per line, Ctrl-D to quit."""
    from llm_core.errors import ConfigError
    from llm_finetune.chat import chat_loop
    from llm_finetune.templates import CheckpointChatTemplate, PromptTemplate, get_template
    from llm_model.checkpoint import checksum_verification
    from llm_model.quantize import quantize_model

    with checksum_verification(not no_verify):
        loaded, tok = _load_with_tokenizer(model, tokenizer, device, dtype, force)
    if loaded.labels:
        raise ConfigError(f"{model}: expected a language model, found a classifier; use `scratchlm classify`")
    network = quantize_model(loaded.model, quantize)  # none: as loaded
    chosen: PromptTemplate
    saved = loaded.info.get("template")
    if template is None and not saved and getattr(tok, "chat_template", None) is not None:
        chosen = CheckpointChatTemplate(tokenizer=tok)
    else:
        chosen = get_template(template or saved or "alpaca")
    interactive = sys.stdin.isatty()

    def write(text: str) -> None:
        typer.echo(text, nl=False)
        sys.stdout.flush()

    if interactive:
        typer.echo(f"chatting with {model} (template {chosen.name}); Ctrl-D to quit", err=True)
    chat_loop(
        network,
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
