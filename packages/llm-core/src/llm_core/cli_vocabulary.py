"""Check that commands speak the shared vocabulary of :mod:`llm_core.cli_options`.

:func:`vocabulary_problems` walks every command of the ``scratchlm`` app (or
the ones named) and lists each departure from the rules in ``docs/cli.md``:

- no visible old spelling (``--base``, ``--checkpoint``, ``--max-tokens``,
  ``--output`` …: hidden deprecated aliases are fine);
- a positional argument that names a model shows as ``MODEL``; outputs go to ``--out``;
- every command that trains (one with ``--resume``) takes ``--config`` and ``--set``;
- every command that runs a positional ``MODEL`` takes ``--device``;
- every command that produces a result takes ``--json`` (interactive ones and
  servers are exempt: ``chat``, ``serve``);
- a shared option has the same shape everywhere (``--json`` and ``--resume``
  are flags, ``--set`` repeats, ``--resume`` has the one shared meaning).

The project's own test runs it over every built-in command; a plugin opts in
by calling it on its commands in its own tests::

    from llm_core.cli_vocabulary import vocabulary_problems
    assert vocabulary_problems(["my-command"]) == []
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["NO_RESULT", "OLD_SPELLINGS", "iter_commands", "vocabulary_problems"]

#: Old or foreign spellings and what replaced them.
OLD_SPELLINGS = {
    "--base": "the positional MODEL",
    "--checkpoint": "the positional MODEL",
    "--model-dir": "the positional MODEL",
    "--max-tokens": "--max-new-tokens",
    "--max-length-new": "--max-new-tokens",
    "--output": "--out",
    "--output-dir": "--out",
    "--out-dir": "--out",
    "--outdir": "--out",
    "--random-seed": "--seed",
    "--json-output": "--json",
}
#: Commands that print no single result: an interactive loop and a server.
NO_RESULT = frozenset({"chat", "serve"})
#: Commands that convert a model's files without running it (no --device).
CONVERTERS = frozenset({"export-hf", "import-hf", "import-book"})
#: Positional parameter names that hold a model.
MODEL_ARGUMENTS = frozenset({"model", "checkpoint", "base"})
#: Positional parameter names that hold an output.
OUTPUT_ARGUMENTS = frozenset({"out", "output", "out_dir"})


def iter_commands(app: Any = None) -> Iterator[tuple[str, Any]]:
    """``(full name, click command)`` of every leaf command of ``app`` (default: the ``scratchlm`` app)."""
    import typer.main

    from llm_core.cli import build_app

    root = typer.main.get_command(app if app is not None else build_app())

    def walk(command: Any, prefix: list[str]) -> Iterator[tuple[str, Any]]:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            yield " ".join(prefix), command
            return
        for name, sub in sorted(subcommands.items()):
            yield from walk(sub, [*prefix, name])

    yield from walk(root, [])


def _problems(name: str, command: Any) -> Iterator[str]:
    from llm_core.cli_options import Resume

    resume_help = typing.get_args(Resume)[1].help
    options: dict[str, Any] = {}
    takes_model = False
    for param in command.params:
        if param.param_type_name == "argument":
            takes_model = takes_model or param.name in MODEL_ARGUMENTS
            if param.name in MODEL_ARGUMENTS and param.metavar not in {"MODEL", "[MODEL]"}:
                yield f"{name}: the positional {param.name!r} must show as MODEL (metavar='MODEL')"
            if param.name in OUTPUT_ARGUMENTS and not param.hidden:
                yield f"{name}: the output goes to --out, not a positional {param.name.upper()}"
            continue
        for flag in [*param.opts, *param.secondary_opts]:
            options[flag] = param
            if flag in OLD_SPELLINGS and not param.hidden:
                yield f"{name}: {flag} is the old spelling of {OLD_SPELLINGS[flag]} (keep it hidden)"
    flags = {"--json": options.get("--json"), "--resume": options.get("--resume")}
    for flag, param in flags.items():
        if param is not None and not param.is_flag:
            yield f"{name}: {flag} must be a flag (no value)"
    if "--set" in options and not options["--set"].multiple:
        yield f"{name}: --set must be repeatable"
    if "--resume" in options:
        if options["--resume"].help != resume_help:
            yield f"{name}: --resume must keep its one meaning ({resume_help!r})"
        for needed in ("--config", "--set", "--out"):
            if needed not in options:
                yield f"{name}: trains (it has --resume) but has no {needed}"
    if takes_model and name not in CONVERTERS and "--device" not in options:
        yield f"{name}: runs MODEL but has no --device"
    if name not in NO_RESULT and "--json" not in options:
        yield f"{name}: produces a result but has no --json"


def vocabulary_problems(names: Iterable[str] | None = None, *, app: Any = None) -> list[str]:
    """Every departure from the shared CLI vocabulary, one line each ([] when all is well).

    ``names`` limits the check to those commands (``"finetune classify"`` for a
    subcommand); ``app`` is a typer app (default: ``scratchlm``'s, with every plugin).
    """
    wanted = None if names is None else set(names)
    found: list[str] = []
    seen: set[str] = set()
    for name, command in iter_commands(app):
        if wanted is not None and name not in wanted:
            continue
        seen.add(name)
        found.extend(_problems(name, command))
    found.extend(f"{missing}: no such command" for missing in sorted((wanted or set()) - seen))
    return found
