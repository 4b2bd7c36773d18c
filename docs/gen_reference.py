"""Write docs/reference/cli.md and config.md from the typer app and the config dataclasses.

Run by `nox -s docs` before `mkdocs build`, so the references never drift from the code.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import click
import typer.main

from llm_core.cli import build_app
from llm_model import GPTConfig
from llm_train import TrainConfig

HERE = Path(__file__).resolve().parent


def cli_reference() -> str:
    command = typer.main.get_command(build_app())
    lines = ["# CLI reference", "", "Generated from the `scratchlm` typer app (`docs/gen_reference.py`).", ""]

    def walk(cmd: click.Command, path: list[str]) -> None:
        ctx = click.Context(cmd, info_name=" ".join(path))
        lines.extend([f"## `{' '.join(path)}`", "", "```text", cmd.get_help(ctx).strip(), "```", ""])
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.list_commands(ctx)):
                walk(cmd.get_command(ctx, name), [*path, name])

    walk(command, ["scratchlm"])
    return "\n".join(lines)


def config_reference() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the config dataclasses (`docs/gen_reference.py`).",
        "",
    ]
    for cls, where in (
        (TrainConfig, "a `--config run.toml` or `--set key=value` of `scratchlm pretrain`"),
        (GPTConfig, "`config.json` of a `gpt2` checkpoint, presets and `--set model=...`"),
    ):
        hints = typing.get_type_hints(cls)
        lines += [
            f"## `{cls.__name__}`",
            "",
            f"Used in {where}.",
            "",
            "| field | type | default |",
            "|---|---|---|",
        ]
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                default = repr(field.default)
            elif field.default_factory is not dataclasses.MISSING:
                default = repr(field.default_factory())
            else:
                default = "required"
            kind = str(hints[field.name]).replace("typing.", "")
            lines.append(f"| `{field.name}` | `{kind}` | `{default}` |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    (HERE / "reference").mkdir(exist_ok=True)
    (HERE / "reference" / "cli.md").write_text(cli_reference(), encoding="utf-8")
    (HERE / "reference" / "config.md").write_text(config_reference(), encoding="utf-8")
