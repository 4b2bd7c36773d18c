"""The shared vocabulary of ``scratchlm``'s command line: one spelling per idea.

Every command that takes one of these ideas uses the option below, so the
same thing has the same name everywhere (``docs/cli.md`` lists the rules and
``tests/test_cli_vocabulary.py`` enforces them over every registered command):

- the model is the positional ``MODEL`` (a checkpoint directory);
- outputs go to ``--out``; results print as one JSON document with ``--json``;
- ``--max-new-tokens``, ``--device``, ``--dtype``, ``--seed`` mean one thing;
- every command that trains takes ``--config FILE`` and ``--set KEY=VALUE``;
- ``--resume`` always continues the newest checkpoint in ``--out``.

A command is a plain function in its package's ``commands.py``, registered in
the ``register_commands`` hook with ``cli.command(NAME)(function)`` (a group of
commands is a ``typer.Typer`` added with ``cli.add_typer``). Old spellings are
kept for one release as hidden options that call :func:`deprecated`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from llm_core.config_io import apply_overrides, parse_override
from llm_core.errors import ConfigError

__all__ = [
    "AsJson",
    "ConfigFile",
    "Device",
    "Dtype",
    "Force",
    "MaxNewTokens",
    "ModelArg",
    "NoVerify",
    "OldOut",
    "Out",
    "Overwrite",
    "Progress",
    "Quantize",
    "Resume",
    "Seed",
    "SetOverrides",
    "deprecated",
    "echo_json",
    "parse_overrides",
    "resolve_out",
]

#: The positional model of every command that runs or starts from one.
ModelArg = Annotated[
    Path,
    typer.Argument(
        metavar="MODEL",
        help="A checkpoint directory (made by pretrain, finetune, import-hf or import-book).",
        show_default=False,
    ),
]
#: Where a command writes what it makes.
Out = Annotated[Path, typer.Option("--out", help="Output directory.")]
#: The output as a positional argument: the 0.2 spelling of ``--out``, hidden, deprecated.
OldOut = Annotated[Optional[Path], typer.Argument(metavar="[OUT]", hidden=True, show_default=False)]
#: How many tokens a generating command may add.
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", help="Most tokens to generate per reply.")]
#: Where tensors live.
Device = Annotated[str, typer.Option("--device", help="Where to run: cpu, cuda, cuda:1, mps.")]
#: The weights' dtype in memory (see ``llm_model.loading``).
Dtype = Annotated[
    str,
    typer.Option("--dtype", help="Weights' dtype in memory: auto (the checkpoint's own), fp32 or bf16."),
]
#: The seed of everything random in the command.
Seed = Annotated[int, typer.Option("--seed", help="Seed of everything random in this command.")]
#: One JSON document on stdout instead of text.
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
#: A TOML/JSON file with any field of the command's config.
ConfigFile = Annotated[
    Optional[Path],
    typer.Option("--config", help="A TOML/JSON file with any of this command's config fields."),
]
#: ``--set key=value`` overrides (repeatable, dotted keys reach into tables, ``null`` unsets).
SetOverrides = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config field, KEY=VALUE (repeatable; the value is read as JSON, "
        "so null, true, 3e-4 and [0.9, 0.95] work; dotted keys reach into tables: "
        "optimizer_options.momentum=0.9).",
    ),
]
#: ``--resume``: continue the newest checkpoint in ``--out``.
Resume = Annotated[bool, typer.Option("--resume", help="Continue the newest checkpoint in --out.")]
#: ``--overwrite``: start afresh in a non-empty ``--out``.
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Start afresh in --out even if it is not empty (what was there goes)."),
]
#: ``--force``: skip the memory check before loading or building a model.
Force = Annotated[
    bool,
    typer.Option("--force", help="Load even when the parameters look larger than the memory available."),
]
#: ``--no-verify``: skip the sha256 check of a checkpoint's files.
NoVerify = Annotated[
    bool,
    typer.Option(
        "--no-verify",
        help="Skip checking the checkpoint's files against their recorded sha256 "
        "(faster for huge files; damage goes unnoticed).",
    ),
]
#: ``--quantize``: fewer bytes per weight for inference (see ``llm_model.quantize``).
Quantize = Annotated[
    str,
    typer.Option(
        "--quantize",
        help="Weights for inference: none (as loaded), int8 (int8 linear layers) or bf16.",
    ),
]
#: ``--progress/--no-progress``.
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def deprecated(old: str, new: str, *, removed_in: str = "0.4") -> None:
    """Say on stderr that option ``old`` is deprecated in favour of ``new`` (it still works)."""
    typer.echo(
        f"warning: {old} is deprecated and will be removed in scratchlm {removed_in}; use {new}",
        err=True,
    )


def resolve_out(out: Path | None, old_out: Path | None) -> Path:
    """The output directory from ``--out``, or from the deprecated positional OUT (with a warning)."""
    if out is not None and old_out is not None:
        raise ConfigError(f"give the output once: --out {out} (the positional {old_out} is the old spelling)")
    if old_out is not None:
        deprecated("OUT as a positional argument", f"--out {old_out}")
        return old_out
    if out is None:
        raise ConfigError("no output directory: pass --out DIR")
    return out


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """``["lr=3e-4", "optimizer_options.momentum=0.9"]`` -> a nested dict.

    Values are read as JSON (``null`` stays ``None``: an override that unsets
    a field takes effect); dotted keys build nested tables. A malformed item
    is one :class:`ConfigError` naming it.
    """
    result: dict[str, Any] = {}
    for item in items or ():
        key, value = parse_override(item)
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}': expected KEY=VALUE, for example lr=3e-4")
        apply_overrides(result, {key: value})
    return result


def echo_json(data: Any) -> None:
    """Print ``data`` as the one JSON document of a ``--json`` command."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
